"""The rclpy node's ROS-free parts (parameter descriptors, outputs, TF pose, diagnostics, launch overrides), and the
node itself where rclpy is installed."""

import ast
import math
from pathlib import Path

import numpy as np
import pytest

from embody4d_ros import node as node_module
from embody4d_ros.conversions import camera_info_to_K, image_to_rgb, rosbags_types, stamp_to_ns
from embody4d_ros.live import diagnostic_status, frame_messages, launch_cameras, output_topics, static_tf_pose, warm_up
from embody4d_ros.params import SCHEMA, SPECS, ParameterError, defaults
from embody4d_ros.runtime import VirtualFrame
from model.engines.base import create_engine
from model.geometry import OrbitTarget, pose_to_matrix, target_transform

LAUNCH_FILE = Path(__file__).resolve().parents[2] / "launch" / "virtual_camera.launch.py"


def test_every_schema_entry_gets_a_typed_descriptor():
    types = {"bool": 1, "int": 2, "float": 3, "str": 4, "list": 8}  # rcl_interfaces/msg/ParameterType
    for spec in SCHEMA:
        fields = node_module.descriptor_fields(spec)
        assert fields["name"] == spec.name and fields["description"] == spec.description
        assert fields["type"] == types[type(spec.default).__name__]
        if spec.choices:
            assert all(choice in fields["additional_constraints"] for choice in spec.choices)
    assert node_module.descriptor_fields(SPECS["queue_size"])["integer_range"][0] == 1
    assert node_module.descriptor_fields(SPECS["sync_slop_s"])["floating_point_range"][0] == 0.0
    assert "integer_range" not in node_module.descriptor_fields(SPECS["target.yaw_deg"])


def test_main_explains_what_to_do_without_ros(capsys):
    if node_module.ROS_IMPORT_ERROR is None:
        pytest.skip("ROS 2 is installed here")
    assert node_module.main([]) == 1
    message = capsys.readouterr().err
    assert "source /opt/ros" in message and "embody4d_ros.dds.virtual_camera" in message


def test_output_topics_and_frame_messages():
    params = {**defaults(), "output_namespace": "/left_view/", "openpi_224": True}
    topics = output_topics(params)
    assert (topics.image, topics.camera_info, topics.openpi) == (
        "/left_view/color/image_raw",
        "/left_view/color/camera_info",
        "/left_view/openpi/image_raw",
    )
    assert output_topics(defaults()).openpi is None
    with pytest.raises(ParameterError, match="absolute"):
        output_topics({**defaults(), "output_namespace": "relative"})

    rgb = np.random.default_rng(0).integers(0, 256, (48, 96, 3), dtype=np.uint8)
    K = np.array([[50.0, 0, 47.5], [0, 50.0, 23.5], [0, 0, 1]])
    frame = VirtualFrame(rgb, K, 1_234_567_890_123, "virtual_optical", "camera_color_optical_frame")
    messages = frame_messages(rosbags_types(), frame, topics)
    assert set(messages) == {topics.image, topics.camera_info, topics.openpi}
    for msg in messages.values():
        assert stamp_to_ns(msg.header.stamp) == frame.stamp_ns and msg.header.frame_id == "virtual_optical"
    np.testing.assert_array_equal(image_to_rgb(messages[topics.image]), rgb)
    np.testing.assert_allclose(camera_info_to_K(messages[topics.camera_info]), K)
    small = image_to_rgb(messages[topics.openpi])
    assert small.shape == (224, 224, 3)
    assert not small[:50].any() and small[112].any()  # 2:1 image: black bars top and bottom, content in the middle


def test_static_tf_is_the_virtual_frame_in_the_source_frame():
    T_dst_src = target_transform(OrbitTarget(yaw_deg=30.0, pivot_m=2.0))
    pose = static_tf_pose(T_dst_src)
    T_src_dst = pose_to_matrix(pose)
    np.testing.assert_allclose(T_src_dst @ T_dst_src, np.eye(4), atol=1e-9)
    # yaw to the right moves the camera to +x of the source (optical x points right)
    assert pose[0] > 0 and math.isclose(np.linalg.norm(pose[3:]), 1.0)


def _summary(frames_out, color_in, drops=None, depth_in=None):
    depth_in = color_in if depth_in is None else depth_in
    return {
        "counts": {"frames_out": frames_out, "color_in": color_in, "depth_in": depth_in},
        "drops": drops or {},
        "latency_ms": {"stamp_to_publish": {"p50": 12.0, "p99": 30.0, "max": 31.0, "n": 5}},
    }


def test_diagnostic_levels():
    level, message, values = diagnostic_status(_summary(10, 10), _summary(0, 0), 1.0, "warp", "warp")
    assert level == "OK" and values["output rate (Hz)"] == "10.00"
    assert values["latency stamp_to_publish p50/p99 (ms)"] == "12.0/30.0"
    assert values["input color rate (Hz)"] == "10.00" and values["input depth messages"] == "10"
    # input that could not be used (here unpaired depth) is a WARN, with the reason
    level, message, _ = diagnostic_status(
        _summary(15, 20, {"depth_unmatched": 3}), _summary(10, 10, {"depth_unmatched": 1}), 1.0, "warp", "warp"
    )
    assert level == "WARN" and "depth_unmatched 2" in message
    # image mode: fewer frames out than colour frames in is a WARN, not an ERROR
    level, message, _ = diagnostic_status(_summary(12, 30), _summary(0, 0), 1.0, "warp", "warp")
    assert level == "WARN" and "12.00 Hz below colour input 30.00 Hz" in message
    assert diagnostic_status(_summary(29, 30), _summary(0, 0), 1.0, "warp", "warp")[0] == "OK"  # one in flight
    # clip mode: a clip filling is normal
    level, message, _ = diagnostic_status(_summary(0, 30), _summary(0, 0), 1.0, "warp", "warp", clip_fill=(30, 49))
    assert level == "OK" and "30/49" in message
    # generation failures are faults of the node
    level, message, _ = diagnostic_status(_summary(9, 10, {"engine_error": 1}), _summary(0, 0), 1.0, "warp", "warp")
    assert level == "ERROR" and "engine_error 1" in message
    assert diagnostic_status(_summary(0, 0), None, 1.0, "warp", "warp")[0] == "OK"


def test_a_fallback_engine_is_an_error_while_it_runs():
    level, message, values = diagnostic_status(_summary(10, 10), _summary(0, 0), 1.0, "tensorrt", "onnxruntime")
    assert level == "ERROR" and "tensorrt" in message and "onnxruntime" in message
    assert values["engine"] == "onnxruntime" and values["requested engine"] == "tensorrt"


def test_warm_up_runs_the_warp_engine():
    assert warm_up(create_engine("warp")) >= 0.0


def test_launch_resolves_the_params_file_and_set_overrides(tmp_path):
    config = LAUNCH_FILE.parents[1] / "config" / "virtual_camera.yaml"
    arguments = {"target.mode": "", "target.pose": "[0, 0, 0.1, 0, 0, 0, 1]", "engine": "", "openpi_224": "true"}
    cameras = launch_cameras(str(config), arguments)
    assert list(cameras) == ["virtual_camera"]
    params = cameras["virtual_camera"]
    # target_pose alone selects pose mode over the file's orbit
    assert params["target.mode"] == "pose" and params["target.pose"] == [0, 0, 0.1, 0, 0, 0, 1]
    assert params["openpi_224"] is True and params["engine"] == "warp"  # empty argument: the file's value

    two = tmp_path / "two.yaml"
    two.write_text(
        "left:\n  ros__parameters:\n    output_namespace: /left\n"
        "right:\n  ros__parameters:\n    output_namespace: /right\n    target: {yaw_deg: -20.0}\n"
    )
    cameras = launch_cameras(str(two), {"target.pitch_deg": "5"})
    assert set(cameras) == {"left", "right"} and cameras["right"]["target.yaw_deg"] == -20.0
    assert all(p["target.pitch_deg"] == 5.0 for p in cameras.values())
    with pytest.raises(ParameterError, match="no_such_parameter"):
        launch_cameras(str(config), {"no_such_parameter": "1"})
    with pytest.raises(ParameterError, match="target.yaw_deg"):
        launch_cameras(str(config), {"target.yaw_deg": "left"})


def test_launch_file_overrides_name_schema_parameters():
    tree = ast.parse(LAUNCH_FILE.read_text())
    assignment = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "OVERRIDES")
    overrides = ast.literal_eval(assignment.value)
    assert set(overrides.values()) <= set(SPECS)
    assert {"target.yaw_deg", "engine", "color_topic"} <= set(overrides.values())


@pytest.mark.ros
def test_node_publishes_on_ros():
    rclpy = pytest.importorskip("rclpy")
    if node_module.ROS_IMPORT_ERROR is not None:
        pytest.skip(f"ROS 2 incomplete here: {node_module.ROS_IMPORT_ERROR}")
    rclpy.init()
    try:
        node = node_module.VirtualCameraNode()
        names = {name for name, _ in node.get_topic_names_and_types()}
        assert "/virtual_camera/color/image_raw" in names and "/virtual_camera/color/camera_info" in names
        assert node.get_parameter("target.yaw_deg").value == defaults()["target.yaw_deg"]
        node.destroy_node()
    finally:
        rclpy.shutdown()
