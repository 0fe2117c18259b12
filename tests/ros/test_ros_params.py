"""The parameter schema, the shipped parameters file and `--param` overrides (no ROS needed)."""

from pathlib import Path

import pytest

from embody4d_ros.params import SCHEMA, ParameterError, defaults, load_params_file, parse_override, resolve, validate

CONFIG = Path(__file__).resolve().parents[2] / "config" / "virtual_camera.yaml"


def test_shipped_file_sets_every_parameter_to_its_default():
    sections = load_params_file(CONFIG)
    assert list(sections) == ["virtual_camera"]
    assert validate(sections["virtual_camera"]) == defaults()
    assert set(sections["virtual_camera"]) == {spec.name for spec in SCHEMA}


def test_fixed_names_and_defaults():
    d = defaults()
    assert d["color_topic"] == "/camera/camera/color/image_raw"
    assert d["depth_topic"] == "/camera/camera/aligned_depth_to_color/image_raw"
    assert d["camera_info_topic"] == "/camera/camera/color/camera_info"
    assert (d["output_namespace"], d["virtual_frame_id"]) == ("/virtual_camera", "virtual_camera_color_optical_frame")
    assert (d["mode"], d["clip_length"], d["engine"], d["target.mode"]) == ("image", 49, "warp", "orbit")
    assert (d["sync_slop_s"], d["queue_size"], d["qos"], d["openpi_224"]) == (0.02, 10, "reliable", False)
    assert (d["output_width"], d["output_height"], d["target.pivot_m"]) == (0, 0, 0.0)
    assert d["target.pose"] == [0, 0, 0, 0, 0, 0, 1]


def test_overrides_parse_types_lists_and_dotted_names(tmp_path):
    cameras = resolve(
        CONFIG,
        [
            "target.mode=pose",
            "target.yaw_deg=-15",
            "target.pose=[1,2,3,0,0,0,1]",
            "openpi_224=true",
            "color_topic=/cam/rgb",
            "output_width=320",
            "mode=clip",
        ],
    )
    p = cameras["virtual_camera"]
    assert p["target.yaw_deg"] == -15.0 and isinstance(p["target.yaw_deg"], float)
    assert p["target.pose"] == [1.0, 2.0, 3.0, 0.0, 0.0, 0.0, 1.0]
    assert p["openpi_224"] is True and p["color_topic"] == "/cam/rgb" and p["output_width"] == 320


def test_several_cameras_and_shared_section(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(
        "/**:\n  ros__parameters:\n    engine: warp\n    target.pitch_deg: 5.0\n"
        "left:\n  ros__parameters:\n    output_namespace: /left\n    target: {yaw_deg: -30.0}\n"
        "right:\n  ros__parameters:\n    output_namespace: /right\n    target.yaw_deg: 30.0\n"
    )
    cameras = resolve(path, ["target.forward_m=0.1"])
    assert sorted(cameras) == ["left", "right"]
    assert cameras["left"]["target.yaw_deg"] == -30.0 and cameras["right"]["target.yaw_deg"] == 30.0
    assert all(c["target.pitch_deg"] == 5.0 and c["target.forward_m"] == 0.1 for c in cameras.values())
    path.write_text("a:\n  ros__parameters: {}\nb:\n  ros__parameters: {}\n")
    with pytest.raises(ParameterError, match="distinct output_namespace"):
        resolve(path)


@pytest.mark.parametrize(
    "override, message",
    [
        ("mode=video", "one of"),
        ("clip_length=4.5", "must be int"),
        ("queue_size=0", ">= 1"),
        ("target.yaw_deg=left", "must be float"),
        ("target.pose=[1,2,3]", r"needs 7 numbers, got 3: \[1.0, 2.0, 3.0\]"),
        ("target.pose=[1,0,0,0,0,0,1]", "orbit and pose"),  # with the next one: both modes' viewpoints, no mode
        ("no_such=1", "unknown parameter"),
        ("target.yaw_deg", "NAME=VALUE"),
        ("clip_overlap=49", "clip_overlap"),
    ],
)
def test_bad_values_are_named(override, message):
    with pytest.raises(ParameterError, match=message):
        resolve(None, [override, "target.yaw_deg=5"] if "orbit and pose" in message else [override])


def test_a_viewpoint_set_without_its_mode_selects_it(tmp_path):
    pose = [0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    # the shipped file says target.mode: orbit; an override of the pose alone still renders that pose
    assert resolve(CONFIG, [f"target.pose={pose}"])["virtual_camera"]["target.mode"] == "pose"
    assert resolve(None, [f"target.pose={pose}"])["virtual_camera"]["target.pose"] == pose
    path = tmp_path / "pose.yaml"
    path.write_text(f"virtual_camera:\n  ros__parameters:\n    target: {{pose: {pose}}}\n")
    assert resolve(path)["virtual_camera"]["target.mode"] == "pose"
    # ... and orbit parameters select orbit over a file in pose mode
    assert resolve(path, ["target.yaw_deg=10"])["virtual_camera"]["target.mode"] == "orbit"
    # an explicit mode wins in its own layer: the shipped file sets every viewpoint parameter and orbit
    assert validate({"target.mode": "orbit", "target.pose": pose, "target.yaw_deg": 3})["target.mode"] == "orbit"
    assert validate({"target.pose": pose})["target.mode"] == "pose"


def test_an_integer_is_accepted_for_a_double():
    params = validate(
        {"target.mode": "pose", "target.yaw_deg": 20, "target.pose": [0, 0, 1, 0, 0, 0, 1], "sync_slop_s": 0}
    )
    assert params["target.yaw_deg"] == 20.0 and isinstance(params["target.yaw_deg"], float)
    assert all(isinstance(v, float) for v in params["target.pose"]) and params["sync_slop_s"] == 0.0


def test_bad_file(tmp_path):
    with pytest.raises(ParameterError, match="does not exist"):
        load_params_file(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("virtual_camera:\n  engine: warp\n")
    with pytest.raises(ParameterError, match="ros__parameters"):
        load_params_file(tmp_path / "bad.yaml")


def test_parse_override_keeps_strings_verbatim():
    assert parse_override("model_path=/opt/w:1") == ("model_path", "/opt/w:1")
    assert parse_override("target.pivot_m=1") == ("target.pivot_m", 1)
