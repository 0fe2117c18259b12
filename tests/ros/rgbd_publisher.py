"""A RealSense-style RGB-D camera on a real ROS 2 graph (rclpy), for the node's end-to-end tests and benchmark.

    python tests/ros/rgbd_publisher.py --rate 30 --frames 150 [--width 640 --height 480] [--wait 60]

Publishes rgb8 colour, 16UC1 depth aligned to it and camera_info on realsense-ros's topics, reliable like
realsense-ros, each frame stamped with the wall clock when it goes out. Waits (up to --wait s) until every topic has
a subscriber, then prints one JSON line: {"stamps": [...]} of the frames it published.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from bench_node import scene  # noqa: E402  (the textured wall and box of the node benchmark)
from embody4d_ros.conversions import depth_to_image, make_camera_info, ns_to_sec_nanosec  # noqa: E402
from embody4d_ros.conversions import rclpy_types, rgb_to_image  # noqa: E402
from embody4d_ros.params import defaults  # noqa: E402

FRAME_ID = "camera_color_optical_frame"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for subscribers on every topic")
    args = parser.parse_args()

    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image

    rclpy.init()
    node = rclpy.create_node("rgbd_publisher")
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    params = defaults()
    color = node.create_publisher(Image, params["color_topic"], qos)
    depth = node.create_publisher(Image, params["depth_topic"], qos)
    info = node.create_publisher(CameraInfo, params["camera_info_topic"], qos)
    deadline = time.monotonic() + args.wait
    while not all(p.get_subscription_count() for p in (color, depth, info)):
        if time.monotonic() > deadline:
            print(f"no subscriber on every input topic after {args.wait} s", file=sys.stderr)
            return 1
        time.sleep(0.05)
    time.sleep(1.5)  # discovery is two-way: let the subscribers match this publisher too

    types = rclpy_types()
    rgb, depth_m, K = scene(args.height, args.width)
    messages = [(info, make_camera_info(types, K, args.width, args.height, 0, FRAME_ID)),
                (depth, depth_to_image(types, depth_m, 0, FRAME_ID)), (color, rgb_to_image(types, rgb, 0, FRAME_ID))]
    stamps = []
    period_ns = int(1e9 / args.rate)
    next_ns = time.monotonic_ns()
    for _ in range(args.frames):
        time.sleep(max(0.0, (next_ns - time.monotonic_ns()) / 1e9))
        next_ns += period_ns
        stamp = time.time_ns()
        sec, nanosec = ns_to_sec_nanosec(stamp)
        for publisher, msg in messages:
            msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
            publisher.publish(msg)
        stamps.append(stamp)
    time.sleep(1.0)  # reliable delivery of the last frames before the participant goes away
    print(json.dumps({"stamps": stamps}), flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
