"""A RealSense-style RGB-D camera on a real ROS 2 graph (rclpy), for the node's end-to-end tests and benchmark.

    python tests/ros/rgbd_publisher.py --rate 30 --frames 150 [--width 640 --height 480] [--wait 60] [--robot-from N]

Publishes rgb8 colour, 16UC1 depth aligned to it and camera_info on realsense-ros's topics, reliable like
realsense-ros, each frame stamped with the wall clock when it goes out. Waits (up to --wait s) until every topic has
a subscriber, then prints one JSON line: {"stamps": [...], "cpu_s": ...}, the frames it published and the CPU time
of its publishing loop. The messages are serialised
once and each frame's stamp is written into their CDR bytes, as cheap as a C++ driver's publishing and not rclpy's
conversion of 1.5 MB per frame from Python (2.2 instead of 2.8 ms of CPU per frame, which the node it feeds needs on a
small machine).

With --robot-from N it is also a robot (as robot_state_publisher and a joint state driver would publish it): the
URDF of ROBOT_URDF on /robot_description and the camera's pose in the robot's root on /tf_static (both latched),
and from frame N on a /joint_states message with each frame's stamp, before the frame.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from bench_node import scene  # noqa: E402  (the textured wall and box of the node benchmark)

from embody4d_ros.allocator import keep_freed_memory  # noqa: E402
from embody4d_ros.conversions import (  # noqa: E402
    depth_to_image,
    make_camera_info,
    make_transform,
    ns_to_sec_nanosec,
    rclpy_types,
    rgb_to_image,
)
from embody4d_ros.params import defaults  # noqa: E402

FRAME_ID = "camera_color_optical_frame"
# header.stamp (int32 sec, uint32 nanosec) of a serialised Image or CameraInfo: the first field, after the 4-byte CDR
# encapsulation header (CDR_LE: serialize_message writes native byte order, little-endian on x86 and ARM)
STAMP_IN_CDR = "<iI"
# A one-joint robot: a 0.2 m cube on a revolute joint about z, its root 0.9 m in front of the camera and 0.25 m to
# the left (the camera's optical axes; the root's axes are the camera's), closer than the scene's box and wall.
ROBOT_CUBE_M = 0.2
ROBOT_ROOT_IN_CAMERA = (-0.25, 0.0, 0.9)
ROBOT_JOINT, ROBOT_JOINT_POSITION = "spin", 0.4
ROBOT_URDF = f"""<robot name="cube_bot">
  <link name="base"/>
  <link name="cube"><visual><geometry><box size="{ROBOT_CUBE_M} {ROBOT_CUBE_M} {ROBOT_CUBE_M}"/></geometry>
    <material name="orange"><color rgba="1 0.5 0 1"/></material></visual></link>
  <joint name="{ROBOT_JOINT}" type="revolute"><parent link="base"/><child link="cube"/><axis xyz="0 0 1"/>
    <limit lower="-3" upper="3" effort="1" velocity="1"/></joint>
</robot>"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for subscribers on every topic")
    parser.add_argument("--robot-from", type=int, default=-1, help="publish the robot, its joint states from frame N")
    args = parser.parse_args()

    import rclpy
    from rclpy.duration import Duration
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import CameraInfo, Image, JointState
    from std_msgs.msg import String
    from tf2_msgs.msg import TFMessage

    keep_freed_memory()  # each frame's 1.5 MB of messages are copied for rclpy: keep the freed blocks
    rclpy.init()
    node = rclpy.create_node("rgbd_publisher")
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    params = defaults()
    color = node.create_publisher(Image, params["color_topic"], qos)
    depth = node.create_publisher(Image, params["depth_topic"], qos)
    info = node.create_publisher(CameraInfo, params["camera_info_topic"], qos)
    types = rclpy_types()
    joint_states, publishers = None, []
    if args.robot_from >= 0:
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        description = node.create_publisher(String, "/robot_description", latched)
        description.publish(String(data=ROBOT_URDF))
        # tf2 convention: the camera is a child of the robot's root (hand-eye calibration); identity rotation
        x, y, z = ROBOT_ROOT_IN_CAMERA
        camera_in_root = make_transform(types, [-x, -y, -z, 0.0, 0.0, 0.0, 1.0], time.time_ns(), "base", FRAME_ID)
        tf_static = node.create_publisher(TFMessage, "/tf_static", latched)
        tf_static.publish(TFMessage(transforms=[camera_in_root]))
        joint_states = node.create_publisher(JointState, "/joint_states", qos)
        publishers = [description, tf_static, joint_states]
    deadline = time.monotonic() + args.wait
    while not all(p.get_subscription_count() for p in (color, depth, info, *publishers)):
        if time.monotonic() > deadline:
            print(f"no subscriber on every input topic after {args.wait} s", file=sys.stderr)
            return 1
        time.sleep(0.05)
    time.sleep(1.5)  # discovery is two-way: let the subscribers match this publisher too

    rgb, depth_m, K = scene(args.height, args.width)
    messages = [
        (info, bytearray(serialize_message(make_camera_info(types, K, args.width, args.height, 0, FRAME_ID)))),
        (depth, bytearray(serialize_message(depth_to_image(types, depth_m, 0, FRAME_ID)))),
        (color, bytearray(serialize_message(rgb_to_image(types, rgb, 0, FRAME_ID)))),
    ]
    stamps = []
    started_cpu_s = time.process_time()
    period_ns = int(1e9 / args.rate)
    next_ns = time.monotonic_ns()
    for index in range(args.frames):
        time.sleep(max(0.0, (next_ns - time.monotonic_ns()) / 1e9))
        next_ns += period_ns
        stamp = time.time_ns()
        sec, nanosec = ns_to_sec_nanosec(stamp)
        if joint_states is not None and index >= args.robot_from:
            joint_state = JointState(name=[ROBOT_JOINT], position=[ROBOT_JOINT_POSITION])
            joint_state.header.stamp.sec, joint_state.header.stamp.nanosec = sec, nanosec
            joint_states.publish(joint_state)
        for publisher, cdr in messages:
            struct.pack_into(STAMP_IN_CDR, cdr, 4, sec, nanosec)
            publisher.publish(bytes(cdr))
        stamps.append(stamp)
    cpu_s = time.process_time() - started_cpu_s
    # reliable delivery of the last frames before the participant goes away: a busy subscriber acknowledges late, and
    # what it has not acknowledged when the writer is destroyed never comes
    writers = (color, depth, info, *publishers)
    unacked = [p.topic_name for p in writers if not p.wait_for_all_acked(Duration(seconds=30))]
    if unacked:
        print(f"not acknowledged by every subscriber after 30 s: {unacked}", file=sys.stderr)
    print(json.dumps({"stamps": stamps, "cpu_s": cpu_s}), flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
