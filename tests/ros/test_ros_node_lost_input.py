"""Input the node's reader overwrote before its callback ran is counted as lost, not silently gone (real rclpy)."""

import os
import time

import numpy as np
import pytest

if os.environ.get("EMBODY4D_REQUIRE_ROS"):
    import rclpy  # noqa: F401  (make test-ros: a missing ROS 2 fails here instead of skipping)
else:
    pytest.importorskip("rclpy")

import rclpy  # noqa: E402
import ros_graph  # noqa: E402, F401  (pins DDS to loopback, in a domain of this run's own, before rclpy starts)
from rclpy.duration import Duration  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from embody4d_ros.conversions import rclpy_types, rgb_to_image  # noqa: E402
from embody4d_ros.node import VirtualCameraNode  # noqa: E402
from embody4d_ros.params import defaults  # noqa: E402

pytestmark = [pytest.mark.ros]
QUEUE_SIZE, SENT = 3, 8


def test_colour_overwritten_in_the_reader_queue_is_counted_lost():
    if not rclpy.ok():
        rclpy.init()
    node = VirtualCameraNode(parameter_overrides=[Parameter("queue_size", value=QUEUE_SIZE)])
    camera = rclpy.create_node(f"lost_input_camera_{os.getpid()}")
    try:
        qos = QoSProfile(depth=SENT, reliability=ReliabilityPolicy.RELIABLE)
        publisher = camera.create_publisher(Image, defaults()["color_topic"], qos)
        deadline = time.monotonic() + 30
        while publisher.get_subscription_count() == 0 or node.count_publishers(defaults()["color_topic"]) == 0:
            assert time.monotonic() < deadline, "the node's colour subscription never matched"
            time.sleep(0.05)
        rgb = np.zeros((24, 32, 3), np.uint8)

        def send(first: int, count: int) -> None:
            for index in range(first, first + count):
                publisher.publish(rgb_to_image(rclpy_types(), rgb, 1_000_000_000 + index * 33_000_000, "camera"))
            assert publisher.wait_for_all_acked(Duration(seconds=10))
            time.sleep(0.2)
            for _ in range(2 * count):
                rclpy.spin_once(node, timeout_sec=0.05)

        send(0, 1)  # the stream has begun
        send(1, SENT)  # nobody runs the node's callbacks meanwhile: its reader keeps the last QUEUE_SIZE
        summary = node.runtime.stats.summary()
        assert summary["counts"]["color_in"] == 1 + QUEUE_SIZE
        assert summary["drops"]["color_lost"] == SENT - QUEUE_SIZE
        # the kept ones waited in the node's reader from before the 0.2 s pause until their callbacks ran
        assert summary["latency_ms"]["reader_wait"]["max"] >= 200
    finally:
        camera.destroy_node()
        node.destroy_node()
