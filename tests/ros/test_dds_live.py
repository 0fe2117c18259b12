"""The virtual camera live over DDS, no ROS installed: three real processes, as on a robot.

A player publishes a recorded RealSense-layout camera at 10 Hz (stamps = wall clock at publication), the runtime runs
on the DDS transport in a second process, and a receiver in a third records what the virtual camera publishes.
"""

import json
import os
import random
import signal
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("cyclonedds")

from embody4d_ros.bag_io import write_rgbd_bag  # noqa: E402
from embody4d_ros.dds import messages  # noqa: E402
from embody4d_ros.params import defaults  # noqa: E402

FRAMES = 30
RATE_HZ = 10.0
# Source stamp to arrival at the receiver, per frame: 2.5 camera periods. The node's own latency is measured by
# bench/bench_node.py; this bound holds on a loaded 2-core CI machine with three Python processes.
LATENCY_BUDGET_S = 0.25
H, W = 240, 320


def _synthetic_bag(path):
    """A 5-frame RGB-D clip: a box 1.2 m away in front of a wall at 2 m, colour gradients so the warp has texture."""
    yy, xx = np.mgrid[0:H, 0:W]
    rgb = np.stack([np.stack([xx * 255 // W, yy * 255 // H, np.full_like(xx, 50 * t)], -1) for t in range(5)]).astype(
        np.uint8
    )
    depth = np.full((5, H, W), 2.0, np.float32)
    depth[:, H // 3 : 2 * H // 3, W // 3 : 2 * W // 3] = 1.2
    K = np.array([[1.25 * W, 0, (W - 1) / 2], [0, 1.25 * W, (H - 1) / 2], [0, 0, 1]])
    return write_rgbd_bag(path, rgb, depth, K, [1_000_000_000 + i * 100_000_000 for i in range(5)])


def _start(module, *args, env):
    return subprocess.Popen(
        [sys.executable, "-m", module, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_three_processes_at_10hz(tmp_path, wait_ready):
    bag = _synthetic_bag(tmp_path / "camera")
    received_path = tmp_path / "received.json"
    # a domain of our own, so concurrent runs on the same machine do not hear each other
    env = {**os.environ, "ROS_DOMAIN_ID": str(random.randint(1, 200)), "PYTHONUNBUFFERED": "1"}
    processes = []
    try:
        receiver = _start(
            "embody4d_ros.dds.echo", "--count", str(FRAMES), "--timeout", "120", "--out", str(received_path), env=env
        )
        processes.append(receiver)
        wait_ready(receiver, 60)
        camera = _start("embody4d_ros.dds.virtual_camera", "--param", "target.yaw_deg=15", env=env)
        processes.append(camera)
        wait_ready(camera, 180)  # includes compiling the warp kernels if not cached
        player = _start(
            "embody4d_ros.dds.play",
            str(bag),
            "--rate",
            str(RATE_HZ),
            "--count",
            str(FRAMES),
            "--wait-for-subscribers",
            "30",
            env=env,
        )
        processes.append(player)
        assert player.wait(timeout=60) == 0, player.stderr.read()
        assert receiver.wait(timeout=30) == 0, receiver.stderr.read()
        camera.send_signal(signal.SIGINT)
        stdout, stderr = camera.communicate(timeout=30)
        assert camera.returncode == 0, stderr
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()

    stats = json.loads(stdout.strip().splitlines()[-1])
    records = json.loads(received_path.read_text())
    assert stats["counts"]["color_in"] >= 0.95 * FRAMES, stats
    assert len(records) >= 0.95 * FRAMES, f"only {len(records)} of {FRAMES} frames came out; runtime stats: {stats}"
    stamps = [r["stamp_ns"] for r in records]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps), "virtual frames out of order or repeated"
    latencies = [(r["received_ns"] - r["stamp_ns"]) / 1e9 for r in records]
    assert max(latencies) <= LATENCY_BUDGET_S, f"latencies {sorted(latencies)[-3:]} s exceed {LATENCY_BUDGET_S} s"
    frame_id = defaults()["virtual_frame_id"]
    for record in records:
        assert (record["width"], record["height"], record["encoding"]) == (W, H, "rgb8")
        assert record["frame_id"] == frame_id and record["info_frame_id"] == frame_id


def test_messages_are_byte_identical_to_ros2_cdr():
    """What the DDS transport puts on the wire is what ROS 2 (rosbags' CDR of sensor_msgs) reads and writes."""
    from embody4d_ros.bag_io import typestore

    store = typestore()
    payload = np.arange(2 * 3 * 3, dtype=np.uint8).tobytes()
    image = messages.Image(
        header=messages.Header(messages.Time(7, 9), "cam"), height=2, width=3, encoding="rgb8", step=9, data=payload
    )
    wire = image.serialize()
    ros = store.deserialize_cdr(wire, "sensor_msgs/msg/Image")
    assert (ros.header.stamp.sec, ros.header.stamp.nanosec, ros.header.frame_id) == (7, 9, "cam")
    assert ros.encoding == "rgb8" and ros.step == 9 and bytes(ros.data) == payload
    assert store.serialize_cdr(ros, "sensor_msgs/msg/Image") == wire
    assert messages.Image.deserialize(wire).data == payload

    info = messages.CameraInfo(
        header=messages.Header(messages.Time(1, 2), "cam"),
        height=2,
        width=3,
        distortion_model="plumb_bob",
        d=[0.0] * 5,
        k=[float(i) for i in range(9)],
        r=[1.0] * 9,
        p=[2.0] * 12,
    )
    ros_info = store.deserialize_cdr(info.serialize(), "sensor_msgs/msg/CameraInfo")
    np.testing.assert_array_equal(ros_info.k, np.arange(9.0))
    assert store.serialize_cdr(ros_info, "sensor_msgs/msg/CameraInfo") == info.serialize()


def test_type_and_topic_names_follow_rmw_cyclonedds():
    from embody4d_ros.dds.transport import dds_topic_name

    assert messages.Image.__idl_typename__ == "sensor_msgs::msg::dds_::Image_"
    assert messages.CameraInfo.__idl_typename__ == "sensor_msgs::msg::dds_::CameraInfo_"
    assert messages.TFMessage.__idl_typename__ == "tf2_msgs::msg::dds_::TFMessage_"
    assert dds_topic_name("/virtual_camera/color/image_raw") == "rt/virtual_camera/color/image_raw"
    with pytest.raises(ValueError, match="fully qualified"):
        dds_topic_name("color/image_raw")
