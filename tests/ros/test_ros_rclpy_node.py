"""The virtual camera node on a real ROS 2 graph (rclpy from PyPI wheels, `make test-ros`).

A RealSense-style publisher process (reliable 640x480 colour, depth and camera_info), the node process, and real
subscribers in this process: frames delivered, stamps, frame ids, camera_info, /tf_static, /diagnostics, the
parameter services, parameter errors and signals.
"""

import math
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

if os.environ.get("EMBODY4D_REQUIRE_ROS"):
    import rclpy  # noqa: F401  (make test-ros: a missing ROS 2 fails here instead of skipping)
else:
    pytest.importorskip("rclpy")

from ros_graph import Probe, publish_camera, start_node, stop  # noqa: E402

from embody4d_ros.params import defaults  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.ros]
VIRTUAL_FRAME = defaults()["virtual_frame_id"]
SOURCE_FRAME = "camera_color_optical_frame"  # rgbd_publisher.py's


@pytest.fixture
def probe():
    probe = Probe()
    yield probe
    probe.close()


def _statuses(probe):
    with probe.lock:
        return [s for s in probe.diagnostics if "virtual camera /virtual_camera" in s.name]


def _check_parameter_services(probe):
    from rcl_interfaces.msg import ParameterType
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient

    client = AsyncParameterClient(probe.node, "/virtual_camera")
    assert client.wait_for_services(timeout_sec=20.0)

    def result(future):
        deadline = time.monotonic() + 20.0
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert future.done(), "parameter service did not answer"
        return future.result()

    values = result(client.get_parameters(["target.yaw_deg", "queue_size", "qos"])).values
    assert values[0].type == ParameterType.PARAMETER_DOUBLE and values[0].double_value == 20.0  # given as integer 20
    assert values[1].integer_value == defaults()["queue_size"] and values[2].string_value == "reliable"
    (queue,) = result(client.describe_parameters(["queue_size"])).descriptors
    assert queue.read_only and queue.integer_range[0].from_value == 1
    (outcome,) = result(client.set_parameters([Parameter("target.yaw_deg", value=5.0)])).results
    assert not outcome.successful  # read-only: the pipeline is built at start-up


def _settled(probe, published, timeout_s=10.0):
    """(images received, key values of the latest /diagnostics report) once that report counts every image as out,
    every published colour message as arrived or lost, and each image's camera_info has arrived: the publisher ends
    once the node's reader has acknowledged its messages, and a node behind its input (a loaded machine) may not have
    taken the last ones yet. After `timeout_s`, the last state: the checks then say what is missing."""
    deadline = time.monotonic() + timeout_s
    while True:
        statuses = _statuses(probe)
        with probe.lock:
            images = list(probe.images)
            paired = all(image.stamp_ns in probe.infos for image in images)
        values = {kv.key: kv.value for kv in statuses[-1].values} if statuses else {}
        colour = int(values.get("input color messages", 0)) + int(values.get("drops color_lost", 0))
        if (values.get("frames out") == str(len(images)) and colour == len(published) and paired) or (
            time.monotonic() > deadline
        ):
            return images, values
        time.sleep(0.2)


def _colour_frames_dropped(values):
    """Colour frames the node reports it dropped, by reason: every drop but those of the other input topics and
    colour messages lost before they arrived (those are not in `input color messages`)."""
    drops = {key[len("drops ") :]: int(value) for key, value in values.items() if key.startswith("drops ")}
    other = ("depth_", "camera_info_", "bad_camera_info", "color_lost")
    return {reason: n for reason, n in drops.items() if not reason.startswith(other)}


@pytest.mark.timeout(600)
# RealSense-style 640x480 at 15 and 30 Hz (issue 13). At 15 Hz at least 99 % of the colour frames must come out. At
# 30 Hz this 2-core CPU cannot generate every frame yet (the warp engine's repair and warp take ~38 ms per frame,
# more than the 33 ms period; docs/BENCHMARKS.md, "Node on ROS 2"): there every frame must be accounted for (arrive
# at the subscriber, or be counted by reason on /diagnostics, which then says WARN).
@pytest.mark.parametrize("rate_hz, frames, min_delivered", [(15.0, 150, 0.99), (30.0, 300, 0.0)])
def test_image_mode_delivers_every_frame(probe, rate_hz, frames, min_delivered):
    width, height = 640, 480
    node = start_node("-p", "target.yaw_deg:=20")  # an integer for a double, as ROS users write it
    try:
        probe.wait_for_node(node)
        published = publish_camera(rate_hz, frames, width, height)
        probe.wait_for_images(len(published), timeout_s=10.0)
        transforms = probe.latched_tf_static()
        _check_parameter_services(probe)
        images, values = _settled(probe, published)
    finally:
        code, _, stderr = stop(node)
    assert code == 0 and "Traceback" not in stderr, stderr

    stamps = [image.stamp_ns for image in images]
    assert set(stamps) <= set(published) and stamps == sorted(set(stamps)), "unknown, repeated or reordered stamps"
    dropped = _colour_frames_dropped(values)
    assert len(images) >= min_delivered * len(published), (
        f"{len(images)} of {len(published)} frames came out at {rate_hz} Hz; dropped {dropped}; diagnostics: {values}"
    )
    for image in images:
        assert (image.frame_id, image.width, image.height, image.encoding) == (VIRTUAL_FRAME, width, height, "rgb8")
        info = probe.infos[image.stamp_ns]
        assert info.header.frame_id == VIRTUAL_FRAME and (info.width, info.height) == (width, height)
        assert info.k[0] > 0 and info.k[8] == 1.0

    (transform,) = transforms
    assert (transform.header.frame_id, transform.child_frame_id) == (SOURCE_FRAME, VIRTUAL_FRAME)
    assert transform.transform.translation.x > 0  # 20 degrees to the right of the source camera
    q = transform.transform.rotation
    assert math.isclose(q.x**2 + q.y**2 + q.z**2 + q.w**2, 1.0, rel_tol=1e-6)

    statuses = _statuses(probe)
    assert statuses and all(s.level != b"\x02" for s in statuses), [s.message for s in statuses if s.level == b"\x02"]
    # Nothing lost silently. Every colour message is counted as it arrives, before any pairing, or reported lost in
    # transport; every frame the node published reached this subscriber; every other colour frame is in the drops
    # (one may still wait in the sync buffer for a depth image that was lost).
    assert int(values["input color messages"]) + int(values.get("drops color_lost", 0)) == len(published), values
    assert int(values["frames out"]) == len(images), values
    unaccounted = int(values["input color messages"]) - len(images) - sum(dropped.values())
    assert 0 <= unaccounted <= 1, (unaccounted, values)
    if dropped:  # and said so on /diagnostics
        assert any(s.level == b"\x01" and "dropped" in s.message for s in statuses), [s.message for s in statuses]


@pytest.mark.timeout(600)
def test_clip_mode_delivers_every_published_frame_paired_with_its_camera_info(probe, tmp_path):
    params = tmp_path / "clip.yaml"
    params.write_text("virtual_camera:\n  ros__parameters:\n    mode: clip\n    target: {yaw_deg: 20}\n")
    node = start_node("--params-file", str(params))
    try:
        probe.wait_for_node(node)
        published = publish_camera(15.0, 100)  # clips of 49 frames, 41 new ones each: 49 + 41 published
        probe.wait_for_images(90, timeout_s=60.0)
        probe.wait_for_images(91, timeout_s=2.0)  # nothing more should come
    finally:
        code, _, stderr = stop(node)
    assert code == 0 and "Traceback" not in stderr, stderr

    statuses = _statuses(probe)
    reported = int({kv.key: kv.value for kv in statuses[-1].values}["frames out"])
    stamps = [image.stamp_ns for image in probe.images]
    # 49 + 41 when every input frame is used; fewer only if input was dropped (then counted, and WARN)
    assert len(stamps) == reported >= 49, f"node reports {reported} published, {len(stamps)} arrived"
    assert stamps == sorted(set(stamps)) and set(stamps) <= set(published)
    unpaired = [stamp for stamp in stamps if stamp not in probe.infos]
    assert not unpaired, f"{len(unpaired)} of {len(stamps)} images lack their camera_info ({len(probe.infos)} came)"
    assert all(probe.infos[stamp].header.frame_id == VIRTUAL_FRAME for stamp in stamps)
    assert all(s.level != b"\x02" for s in statuses), "ERROR while the clip fills"
    assert any(s.message.startswith("filling the clip") for s in statuses)


def _run_node(*ros_args):
    node = start_node(*ros_args)
    try:
        _, stderr = node.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        code, _, stderr = stop(node)
        pytest.fail(f"the node started with {ros_args}; expected it to refuse them. {stderr}")
    return node.returncode, stderr


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "ros_args, words",
    [
        (("-p", "queue_size:=0"), ("queue_size", "0", ">= 1")),
        (("-p", "target.pivot_m:=-1.0"), ("target.pivot_m", "-1.0", ">= 0.0")),
        (("-p", "mode:=video"), ("mode", "video", "image", "clip")),
        (("-p", "depth.sensor:=kinect"), ("depth.sensor", "kinect", "d435", "mono")),
        (("-p", "target.yaw_deg:=left"), ("target.yaw_deg", "left", "float")),
        (("-p", "target.pose:=[1.0,2.0]"), ("target.pose", "7 numbers", "[1.0, 2.0]")),
        (
            ("-p", "target.pose:=[0.1,0.0,0.0,0.0,0.0,0.0,1.0]", "-p", "target.yaw_deg:=5.0"),
            ("target.mode", "orbit", "pose"),
        ),
        (("-p", "target.pose:=[0.1,0,0,0,0,0,1]"), ("target.pose:=[0.1,0,0,0,0,0,1]", "same type")),  # rcl refuses it
        ("file:queue_size: 0", ("queue_size", "0", ">= 1")),
        ("file:engine: [1, 2]", ("engine", "[1, 2]")),
        ("file:- not a mapping", ("cannot start",)),
    ],
)
def test_invalid_parameters_exit_2_with_one_line(tmp_path, ros_args, words):
    if isinstance(ros_args, str):
        path = tmp_path / "params.yaml"
        body = ros_args.removeprefix("file:")
        path.write_text(body if body.startswith("-") else f"virtual_camera:\n  ros__parameters:\n    {body}\n")
        ros_args = ("--params-file", str(path))
    code, stderr = _run_node(*ros_args)
    # rcl logs its own parse errors before the node can say anything; the node adds one line
    lines = [line for line in stderr.splitlines() if line.strip() and "] [rcl]: " not in line]
    assert code == 2 and len(lines) == 1 and "Traceback" not in stderr, stderr
    assert all(word in lines[0] for word in words), lines[0]


@pytest.mark.timeout(300)
def test_a_pose_set_without_target_mode_renders_that_pose(probe):
    node = start_node("-p", "target.pose:=[0.1,0.0,0.0,0.0,0.0,0.0,1.0]")
    try:
        probe.wait_for_node(node)
        publish_camera(15.0, 5, width=320, height=240)
        transforms = probe.latched_tf_static()
    finally:
        code, _, stderr = stop(node, signal.SIGTERM)
    assert code == 0 and "Traceback" not in stderr, stderr  # SIGTERM too ends the node cleanly
    (transform,) = transforms
    assert math.isclose(transform.transform.translation.x, 0.1, abs_tol=1e-9)
    assert transform.transform.rotation.w == pytest.approx(1.0)


def _fast_dds_sending_threads(pid):
    """Names of the threads Fast DDS starts to send for asynchronous writers (dds.asyn.<participant>.<n>)."""
    names = [Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip() for tid in os.listdir(f"/proc/{pid}/task")]
    return sorted(name for name in names if name.startswith("dds.asyn."))


@pytest.mark.timeout(300)
def test_the_node_publishes_asynchronously_unless_the_environment_says_otherwise(probe, monkeypatch):
    # Fast DDS sends from a thread of its own for asynchronous writers; its discovery has one such thread whatever the
    # mode, and the node's publishers add another only when rmw_fastrtps made them asynchronous. So: left unset, the
    # node must run as with ASYNCHRONOUS set, and a user's SYNCHRONOUS must stay (one sending thread fewer).
    threads = {}
    for mode in (None, "ASYNCHRONOUS", "SYNCHRONOUS"):
        if mode is None:
            monkeypatch.delenv("RMW_FASTRTPS_PUBLICATION_MODE", raising=False)
        else:
            monkeypatch.setenv("RMW_FASTRTPS_PUBLICATION_MODE", mode)
        deadline = time.monotonic() + 30.0
        while probe.image_sub.get_publisher_count() and time.monotonic() < deadline:
            time.sleep(0.1)  # the previous node's publisher is gone: the match below is this node's
        node = start_node()
        try:
            probe.wait_for_node(node)  # its publishers exist
            threads[mode] = _fast_dds_sending_threads(node.pid)
        finally:
            code, _, stderr = stop(node)
        assert code == 0, stderr
    assert threads[None] == threads["ASYNCHRONOUS"], threads
    assert len(threads["SYNCHRONOUS"]) < len(threads[None]), threads
