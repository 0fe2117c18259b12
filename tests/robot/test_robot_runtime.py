"""The runtime's robot layer as the node uses it: robot messages in (as rosbags/rclpy objects), synced frames in,
frames drawn with the robot counted in the runtime's stats and shown by /diagnostics; frames it cannot draw are
still published."""

import numpy as np
from box_arm_topics import feed_description_and_tf, feed_joint_state, synced_frame

from embody4d_ros.bag_io import typestore
from embody4d_ros.conversions import rosbags_types
from embody4d_ros.live import diagnostic_status
from embody4d_ros.params import validate
from embody4d_ros.runtime import VirtualCameraRuntime

H, W = 48, 64
K = np.array([[60.0, 0, 31.5], [0, 60.0, 23.5], [0, 0, 1]])


def test_frames_are_drawn_with_the_robot_once_its_topics_arrive_and_diagnostics_say_so():
    store = typestore()
    types = rosbags_types(store)
    published = []
    runtime = VirtualCameraRuntime(validate({"target.yaw_deg": 15.0}), publish=published.append, log=lambda _: None)
    rng = np.random.default_rng(0)

    def frame(stamp):
        rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        synced_frame(runtime, types, rgb, np.full((H, W), 2.5, np.float32), K, stamp)

    frame(1_000_000_000)  # no robot description yet: made the plain way
    layer = runtime.robot_layer
    feed_description_and_tf(layer, store, types)
    feed_joint_state(layer, store, types, 1_990_000_000, 0.2)
    frame(2_000_000_000)  # joint state 10 ms old: drawn
    frame(3_000_000_000)  # joint state 1 s old: stale, plain
    assert len(published) == 3
    counts = runtime.stats.summary()["counts"]
    assert "robot_no_robot_model" not in counts  # auto, before any description: not a skipped robot frame
    assert (counts["robot_drawn"], counts["robot_joint_state_stale"]) == (1, 1)
    _, _, values = diagnostic_status(runtime.stats.summary(), None, 1.0, "warp", "warp")
    assert values["robot layer drawn"] == "1" and values["robot layer joint_state_stale"] == "1"


def test_a_bad_robot_description_is_one_warning_through_the_transport_log_and_frames_still_come():
    store = typestore()
    types = rosbags_types(store)
    published, logged = [], []
    runtime = VirtualCameraRuntime(validate({"target.yaw_deg": 15.0}), publish=published.append, log=logged.append)
    unparsable = "<robot name='arm'><link name='base'>"
    for _ in range(3):  # a latched description arrives again with every new subscription
        runtime.robot_layer.feed_message("/robot_description", store.types["std_msgs/msg/String"](data=unparsable))
    for stamp in (1_000_000_000, 2_000_000_000):
        synced_frame(runtime, types, np.full((H, W, 3), 128, np.uint8), np.full((H, W), 2.5, np.float32), K, stamp)
    assert len(published) == 2
    robot_lines = [line for line in logged if "robot" in line]
    assert len(robot_lines) == 1 and "/robot_description" in robot_lines[0] and "robot layer off" in robot_lines[0]
    assert runtime.stats.summary()["counts"]["robot_no_robot_model"] == 2
