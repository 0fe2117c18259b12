"""The virtual camera on the DDS transport: the runtime of the rclpy node, without ROS installed.

    python -m embody4d_ros.dds.virtual_camera [--params-file F] [--param NAME=VALUE ...] [--node NAME]
        [--realsense camera|SERIAL|RECORDING [--realsense-filters spatial,temporal,hole_filling]]

Subscribes to the colour, depth and camera_info topics and publishes `<output_namespace>/color/{image_raw,
camera_info}` (and the openpi image) with the same names, types and QoS as the rclpy node, plus the static TF on
/tf_static. With the robot layer on (docs/ROBOT.md) it also takes /robot_description, /joint_states, /tf and
/tf_static. Prints `ready` once subscribed and warmed up, and the runtime's counters as JSON on exit (SIGINT/SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Any, Sequence

from embody4d_ros.conversions import make_transform
from embody4d_ros.dds import messages
from embody4d_ros.dds.transport import DdsNode, dds_types
from embody4d_ros.live import frame_messages, output_topics, publisher_depth, static_tf_pose, warm_up
from embody4d_ros.params import DEFAULT_NODE_NAME, ParameterError, resolve
from embody4d_ros.robot_layer import JOINT_STATES, ROBOT_DESCRIPTION, TF, TF_STATIC
from embody4d_ros.runtime import VirtualCameraRuntime, VirtualFrame
from model.depth import DepthError
from model.engines.base import EngineError


class DdsVirtualCamera:
    """Wires a `VirtualCameraRuntime` to DDS readers and writers; `close()` stops the worker."""

    def __init__(self, node: DdsNode, params: dict[str, Any], **runtime_options: Any) -> None:
        self.node = node  # the participant owns every reader and writer: keep it alive
        self.params = params
        self.types = dds_types()
        self.topics = output_topics(params)
        depth = publisher_depth(params)
        self.writers = {
            self.topics.image: node.create_publisher(messages.Image, self.topics.image, depth=depth),
            self.topics.camera_info: node.create_publisher(messages.CameraInfo, self.topics.camera_info, depth=depth),
        }
        if self.topics.openpi is not None:
            self.writers[self.topics.openpi] = node.create_publisher(messages.Image, self.topics.openpi, depth=depth)
        # latched like tf2's static broadcaster: late subscribers still get the transform
        self.tf_writer = node.create_publisher(
            messages.TFMessage, TF_STATIC, qos="reliable", depth=1, transient_local=True
        )
        self._tf_sent = False
        self.runtime = VirtualCameraRuntime(params, self._publish, **runtime_options)
        warm_up(self.runtime.engine)
        qos, depth = params["qos"], params["queue_size"]
        node.create_subscription(
            messages.CameraInfo, params["camera_info_topic"], self.runtime.on_camera_info, qos, depth
        )
        node.create_subscription(messages.Image, params["color_topic"], self.runtime.on_color, qos, depth)
        if self.runtime.depth_estimator is None:
            node.create_subscription(messages.Image, params["depth_topic"], self.runtime.on_depth, qos, depth)
        if self.runtime.robot_layer is not None:
            self._subscribe_robot_topics(self.runtime.robot_layer)
        self.runtime.start()

    def _subscribe_robot_topics(self, layer: Any) -> None:
        """The robot layer's topics with the rclpy node's QoS (the description and /tf_static latched)."""

        def feed(topic: str) -> Any:
            return lambda msg: layer.feed_message(topic, msg)

        for topic, kind, depth, latched in (
            (ROBOT_DESCRIPTION, messages.String, 1, True),
            (JOINT_STATES, messages.JointState, 100, False),
            (TF, messages.TFMessage, 100, False),
            (TF_STATIC, messages.TFMessage, 100, True),
        ):
            self.node.create_subscription(kind, topic, feed(topic), "reliable", depth, transient_local=latched)

    def _publish(self, frame: VirtualFrame) -> None:
        if not self._tf_sent and self.runtime.T_dst_src is not None:
            pose = static_tf_pose(self.runtime.T_dst_src)
            self.tf_writer.write(
                messages.TFMessage(
                    [make_transform(self.types, pose, frame.stamp_ns, frame.source_frame_id, frame.frame_id)]
                )
            )
            self._tf_sent = True
        for topic, msg in frame_messages(self.types, frame, self.topics).items():
            self.writers[topic].write(msg)

    def close(self) -> None:
        self.runtime.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m embody4d_ros.dds.virtual_camera", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--params-file", help="ROS 2 parameters file (config/virtual_camera.yaml form)")
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="override one parameter (repeatable)"
    )
    parser.add_argument("--node", default=DEFAULT_NODE_NAME, help="which node section of the parameters file to run")
    parser.add_argument(
        "--realsense",
        metavar="SOURCE",
        help="read a RealSense through pyrealsense2 instead of the input topics: 'camera' (the first "
        "one), a serial number or a recording (.db3/.bag); embody4d_ros.realsense",
    )
    parser.add_argument(
        "--realsense-filters",
        default="",
        metavar="LIST",
        help="librealsense depth filters for --realsense, comma-separated: spatial,temporal,hole_filling",
    )
    args = parser.parse_args(argv)
    try:
        cameras = resolve(args.params_file, args.param)
    except ParameterError as exc:
        parser.error(str(exc))
    if args.node not in cameras:
        parser.error(f"no section {args.node!r} in {args.params_file}; it has {sorted(cameras)}")

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        camera = DdsVirtualCamera(DdsNode(), cameras[args.node], log=lambda m: print(m, file=sys.stderr, flush=True))
    except (EngineError, DepthError) as exc:
        print(f"virtual camera cannot start: {exc}", file=sys.stderr)
        return 2
    print("ready", flush=True)
    if args.realsense:
        from embody4d_ros.realsense import config_from_text, feed_runtime

        config = config_from_text(args.realsense, args.realsense_filters)

        def play() -> None:  # the camera or recording ends the run when it ends
            feed_runtime(camera.runtime, config, stop)
            stop.set()

        threading.Thread(target=play, daemon=True).start()
    stop.wait()
    camera.close()
    print(json.dumps(camera.runtime.stats.summary()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
