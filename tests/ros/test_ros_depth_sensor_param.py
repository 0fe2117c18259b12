"""The `depth.sensor` parameter: validated like every parameter, and it reaches the warp (the camera's expected
depth error) through the runtime (no ROS needed)."""

import math

import numpy as np
import pytest

import embody4d_ros.runtime as runtime_module
from embody4d_ros.cli import main
from embody4d_ros.conversions import Frame
from embody4d_ros.params import SPECS, ParameterError, resolve, validate
from embody4d_ros.runtime import VirtualCameraRuntime

H, W = 48, 64
K = np.array([[60.0, 0.0, 31.5], [0.0, 60.0, 23.5], [0.0, 0.0, 1.0]])


def test_choices_and_default():
    assert validate({})["depth.sensor"] == "d435"  # realsense-ros's topics are the defaults
    assert set(SPECS["depth.sensor"].choices) == {"clean", "d415", "d435", "d455", "mono"}
    assert resolve(None, ["depth.sensor=mono"])["virtual_camera"]["depth.sensor"] == "mono"


@pytest.mark.parametrize(
    "values, message",
    [
        ({"depth.sensor": "kinect"}, r"depth.sensor must be one of \['clean', 'd435', 'd415', 'd455', 'mono'\]"),
        ({"depth.sensor": 435}, "depth.sensor must be str"),
        ({"depth.source": "depth_anything_v2", "depth.sensor": "d435"}, "set depth.sensor to mono"),
    ],
)
def test_bad_values_are_named(values, message):
    with pytest.raises(ParameterError, match=message):
        validate(values)


def test_an_estimator_makes_the_depth_mono():
    assert validate({"depth.source": "depth_anything_v2"})["depth.sensor"] == "mono"
    assert validate({"depth.source": "depth_anything_v2", "depth.sensor": "mono"})["depth.sensor"] == "mono"


def test_a_bad_value_exits_2_with_one_line(tmp_path, capsys):
    code = main(["augment-bag", str(tmp_path / "in"), str(tmp_path / "out"), "--param", "depth.sensor=kinect"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "depth.sensor" in lines[0] and "kinect" in lines[0]


@pytest.mark.parametrize(
    "sensor, baseline_m, native_width", [("d435", 0.050, 848), ("d455", 0.095, 848), ("d415", 0.055, 1280)]
)
def test_the_warp_is_told_the_cameras_expected_error(monkeypatch, sensor, baseline_m, native_width):
    seen = []
    prepare = runtime_module.prepare_virtual_view
    monkeypatch.setattr(
        runtime_module, "prepare_virtual_view", lambda *a, **kw: seen.append(kw["settings"]) or prepare(*a, **kw)
    )
    params = validate({"depth.sensor": sensor, "robot.enable": "false"})
    runtime = VirtualCameraRuntime(params, publish=lambda _: None, log=lambda _: None)
    rgb = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    runtime.submit(Frame(rgb=rgb, depth=np.full((H, W), 2.0, np.float32), K=K, stamp_ns=1, frame_id="cam"))
    assert runtime.process_next() == 1
    # Intel's formula: 0.08 px of disparity at the native focal length of this field of view times the baseline
    expected = 0.08 / (K[0, 0] * native_width / W * baseline_m)
    assert math.isclose(seen[0].depth_noise_inv_m, expected, rel_tol=1e-9)
    clean = VirtualCameraRuntime(validate({"depth.sensor": "clean"}), publish=lambda _: None, log=lambda _: None)
    clean.submit(Frame(rgb=rgb, depth=np.full((H, W), 2.0, np.float32), K=K, stamp_ns=1, frame_id="cam"))
    clean.process_next()
    assert seen[1].depth_noise_inv_m == 0.0
