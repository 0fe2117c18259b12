"""Publish a recorded camera live over DDS, like `ros2 bag play` for one RGB-D camera, without ROS.

    python -m embody4d_ros.dds.play BAG [--rate 10] [--count N] [--wait-for-subscribers 10]

Frames are read from the bag (realsense-ros topics by default) and re-published at `--rate` Hz in a loop, their
header stamps replaced by the wall-clock time of publication, so a receiver measures latency as (receive time -
stamp). Colour and camera_info go out reliable, as realsense-ros publishes them.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from typing import Sequence

from embody4d_ros.bag_io import BagError, CameraTopics, read_rgbd_frames
from embody4d_ros.conversions import ConversionError, Frame, depth_to_image, make_camera_info, rgb_to_image
from embody4d_ros.dds import messages
from embody4d_ros.dds.transport import DdsNode, dds_types


def wait_for_subscribers(writers: Sequence, timeout_s: float) -> bool:
    """Block until every writer has a matched reader (DDS discovery), or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(w.get_matched_subscriptions() for w in writers):
            return True
        time.sleep(0.05)
    return False


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m embody4d_ros.dds.play", description=__doc__.split("\n")[0])
    parser.add_argument("bag", help="rosbag2 directory with colour, depth and camera_info")
    parser.add_argument("--rate", type=float, default=10.0, help="frames per second")
    parser.add_argument("--count", type=int, default=0, help="frames to publish (0: play the bag once)")
    parser.add_argument(
        "--wait-for-subscribers",
        type=float,
        default=0.0,
        metavar="S",
        help="wait up to S seconds for a subscriber on every topic before publishing",
    )
    topics = CameraTopics()
    parser.add_argument("--color-topic", default=topics.color)
    parser.add_argument("--depth-topic", default=topics.depth)
    parser.add_argument("--camera-info-topic", default=topics.camera_info)
    args = parser.parse_args(argv)
    topics = CameraTopics(args.color_topic, args.depth_topic, args.camera_info_topic)

    try:
        frames: list[Frame] = list(read_rgbd_frames(args.bag, topics))
    except (BagError, ConversionError, FileNotFoundError) as exc:
        parser.error(str(exc))
    if not frames:
        parser.error(f"{args.bag} has no synchronised frames on {topics}")
    node = DdsNode()
    color = node.create_publisher(messages.Image, topics.color)
    depth = node.create_publisher(messages.Image, topics.depth)
    info = node.create_publisher(messages.CameraInfo, topics.camera_info)
    if args.wait_for_subscribers and not wait_for_subscribers([color, depth, info], args.wait_for_subscribers):
        print(f"no subscriber within {args.wait_for_subscribers} s; publishing anyway", file=sys.stderr)
    types = dds_types()
    count = args.count or len(frames)
    period_ns = int(1e9 / args.rate)
    next_ns = time.monotonic_ns()
    for frame in itertools.islice(itertools.cycle(frames), count):
        time.sleep(max(0.0, (next_ns - time.monotonic_ns()) / 1e9))
        next_ns += period_ns
        stamp = time.time_ns()
        height, width = frame.rgb.shape[:2]
        info.write(make_camera_info(types, frame.K, width, height, stamp, frame.frame_id))
        if frame.depth is not None:  # read with require_depth: always
            depth.write(depth_to_image(types, frame.depth, stamp, frame.frame_id))
        color.write(rgb_to_image(types, frame.rgb, stamp, frame.frame_id))
    time.sleep(0.2)  # let the last samples leave before the participant goes away
    return 0


if __name__ == "__main__":
    sys.exit(main())
