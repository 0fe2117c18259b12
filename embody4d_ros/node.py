"""`virtual_camera_node`: the Embody4D virtual camera as an rclpy node (docs/DESIGN.md contract 5).

    ros2 launch embody4d_ros virtual_camera.launch.py
    ros2 run embody4d_ros virtual_camera_node --ros-args --params-file config/virtual_camera.yaml

Subscribes to colour, aligned depth and camera_info (realsense-ros names by default) through a message_filters
ApproximateTimeSynchronizer and publishes `<output_namespace>/color/image_raw` (rgb8) and `.../camera_info` with the
source stamp and `virtual_frame_id`, a static TF from the source optical frame to the virtual one, and
/diagnostics. All logic lives in the ROS-free runtime (embody4d_ros.runtime) and embody4d_ros.live; this module
only wires it to rclpy. Incoming messages are converted by the runtime's own conversions, which read rclpy
messages directly (cv_bridge would add a copy and a dependency for the same rgb8/16UC1/32FC1 handling).
"""
from __future__ import annotations

import sys
import time
from typing import Any

from embody4d_ros.conversions import make_transform, rclpy_types
from embody4d_ros.live import diagnostic_status, frame_messages, output_topics, static_tf_pose, warm_up
from embody4d_ros.params import DEFAULT_NODE_NAME, SCHEMA, ParameterError, ParamSpec, validate
from embody4d_ros.runtime import VirtualCameraRuntime, VirtualFrame
from model.depth import DepthError
from model.engines.base import EngineError

try:
    import diagnostic_updater
    import message_filters
    import rclpy
    from diagnostic_msgs.msg import DiagnosticStatus
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
    from rclpy.executors import ExternalShutdownException
    from rclpy.node import Node
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image
    from tf2_ros import StaticTransformBroadcaster

    ROS_IMPORT_ERROR: ImportError | None = None
except ImportError as exc:  # no ROS 2 sourced: the module still imports, main() explains
    ROS_IMPORT_ERROR = exc
    Node = object  # type: ignore[assignment,misc]

# rcl_interfaces/msg/ParameterType values, by the Python type of a schema default
PARAMETER_TYPES = {bool: 1, int: 2, float: 3, str: 4, list: 8}
_INT64_MAX = 2**63 - 1
# Publishers: reliable keep-last, the rclpy default that image_pipeline consumers expect.
PUBLISHER_DEPTH = 5


def descriptor_fields(spec: ParamSpec) -> dict[str, Any]:
    """The ParameterDescriptor fields of one schema entry (ranges as (from, to) tuples), ROS-free for testing."""
    fields: dict[str, Any] = {
        "name": spec.name,
        "type": PARAMETER_TYPES[spec.kind],
        "description": spec.description,
        "read_only": spec.read_only,
    }
    if spec.choices:
        fields["additional_constraints"] = "one of: " + ", ".join(spec.choices)
    if spec.min_value is not None:
        if spec.kind is int:
            fields["integer_range"] = (int(spec.min_value), _INT64_MAX)
        else:
            fields["floating_point_range"] = (float(spec.min_value), sys.float_info.max)
    return fields


def _descriptor(spec: ParamSpec) -> "ParameterDescriptor":
    fields = descriptor_fields(spec)
    if "integer_range" in fields:
        low, high = fields.pop("integer_range")
        fields["integer_range"] = [IntegerRange(from_value=low, to_value=high, step=0)]
    if "floating_point_range" in fields:
        low, high = fields.pop("floating_point_range")
        fields["floating_point_range"] = [FloatingPointRange(from_value=low, to_value=high, step=0.0)]
    return ParameterDescriptor(**fields)


def _subscriber_qos(kind: str, depth: int) -> "QoSProfile":
    """sensor_data: best effort, which also receives from reliable publishers (realsense-ros publishes reliable)."""
    reliability = ReliabilityPolicy.BEST_EFFORT if kind == "sensor_data" else ReliabilityPolicy.RELIABLE
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=reliability, durability=DurabilityPolicy.VOLATILE)


class VirtualCameraNode(Node):
    """Wires `VirtualCameraRuntime` to rclpy: synchronised subscriptions in, publishers, TF and diagnostics out."""

    def __init__(self, **node_options: Any) -> None:
        super().__init__(DEFAULT_NODE_NAME, **node_options)
        for spec in SCHEMA:
            self.declare_parameter(spec.name, spec.default, _descriptor(spec))
        params = validate({spec.name: _plain(self.get_parameter(spec.name).value) for spec in SCHEMA})
        self.params = params
        self.types = rclpy_types()
        self.topics = output_topics(params)
        self.runtime = VirtualCameraRuntime(params, self._publish, log=self.get_logger().warning)
        self.get_logger().info(f"engine {params['engine']} ready after {warm_up(self.runtime.engine):.1f} s warm-up")

        publisher_qos = QoSProfile(depth=PUBLISHER_DEPTH)
        self.publishers_by_topic = {
            self.topics.image: self.create_publisher(Image, self.topics.image, publisher_qos),
            self.topics.camera_info: self.create_publisher(CameraInfo, self.topics.camera_info, publisher_qos),
        }
        if self.topics.openpi is not None:
            self.publishers_by_topic[self.topics.openpi] = self.create_publisher(Image, self.topics.openpi, publisher_qos)
        self.tf_broadcaster = StaticTransformBroadcaster(self)
        self._tf_sent = False

        qos = _subscriber_qos(params["qos"], params["queue_size"])
        inputs = [message_filters.Subscriber(self, Image, params["color_topic"], qos_profile=qos)]
        if self.runtime.depth_estimator is None:
            inputs.append(message_filters.Subscriber(self, Image, params["depth_topic"], qos_profile=qos))
        inputs.append(message_filters.Subscriber(self, CameraInfo, params["camera_info_topic"], qos_profile=qos))
        self.sync = message_filters.ApproximateTimeSynchronizer(inputs, params["queue_size"], params["sync_slop_s"])
        self.sync.registerCallback(self._on_synced)

        self.diagnostics = diagnostic_updater.Updater(self)
        self.diagnostics.setHardwareID(f"{self.runtime.engine.name} engine")
        self.diagnostics.add(f"virtual camera {params['output_namespace']}", self._diagnose)
        self._last_summary: dict[str, Any] | None = None
        self._last_diagnosed = time.monotonic()
        self.runtime.start()

    def _on_synced(self, color: Any, *rest: Any) -> None:
        depth, camera_info = rest if len(rest) == 2 else (None, rest[0])
        self.runtime.on_synced(color, depth, camera_info)

    def _publish(self, frame: VirtualFrame) -> None:
        """Runs on the runtime's worker thread; rclpy publishers may be used from any thread."""
        if not self._tf_sent and self.runtime.T_dst_src is not None:
            pose = static_tf_pose(self.runtime.T_dst_src)
            self.tf_broadcaster.sendTransform(make_transform(self.types, pose, frame.stamp_ns, frame.source_frame_id, frame.frame_id))
            self._tf_sent = True
        for topic, msg in frame_messages(self.types, frame, self.topics).items():
            self.publishers_by_topic[topic].publish(msg)

    def _diagnose(self, stat: Any) -> Any:
        now = time.monotonic()
        summary = self.runtime.stats.summary()
        level, message, values = diagnostic_status(summary, self._last_summary, now - self._last_diagnosed,
                                                   self.params["engine"], self.runtime.engine.name)
        self._last_summary, self._last_diagnosed = summary, now
        stat.summary(getattr(DiagnosticStatus, level), message)
        for key, value in values.items():
            stat.add(key, value)
        return stat

    def destroy_node(self) -> None:
        self.runtime.stop()
        super().destroy_node()


def _plain(value: Any) -> Any:
    """rclpy returns double arrays as array('d'); the schema wants lists."""
    return list(value) if not isinstance(value, (str, bool, int, float)) else value


def main(args: list[str] | None = None) -> int:
    if ROS_IMPORT_ERROR is not None:
        print(
            f"virtual_camera_node needs ROS 2 ({ROS_IMPORT_ERROR}). Source your ROS 2 setup "
            "(source /opt/ros/<distro>/setup.bash) and install rclpy, sensor_msgs, message_filters, tf2_ros and "
            "diagnostic_updater (rosdep install --from-paths . -y). Without ROS, the same runtime runs on DDS: "
            "python -m embody4d_ros.dds.virtual_camera --params-file config/virtual_camera.yaml",
            file=sys.stderr,
        )
        return 1
    rclpy.init(args=args)
    node = None
    try:
        node = VirtualCameraNode()
        rclpy.spin(node)
    except (ParameterError, EngineError, DepthError) as exc:
        print(f"virtual_camera_node cannot start: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
