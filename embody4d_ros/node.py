"""`virtual_camera_node`: the Embody4D virtual camera as an rclpy node (docs/DESIGN.md contract 5).

    ros2 launch embody4d_ros virtual_camera.launch.py
    ros2 run embody4d_ros virtual_camera_node --ros-args --params-file config/virtual_camera.yaml

Subscribes to colour, aligned depth and camera_info (realsense-ros names by default), pairs colour and depth with
the runtime's SyncBuffer (the one augment-bag and the DDS transport use), and publishes
`<output_namespace>/color/image_raw` (rgb8) and `.../camera_info` with the source stamp and `virtual_frame_id`,
the static transform from the source optical frame to the virtual one on /tf_static (tf2_msgs/TFMessage, transient
local, as tf2's static broadcaster sends it), and a diagnostic_msgs/DiagnosticArray on /diagnostics every second.
With the robot layer on (`robot.enable` auto or true, docs/ROBOT.md) it also subscribes to /robot_description,
/joint_states, /tf and /tf_static and feeds them to the layer, which draws the robot from its model.
It needs only rclpy and message packages. All logic lives in the ROS-free runtime (embody4d_ros.runtime) and
embody4d_ros.live; this module only wires it to rclpy. Incoming messages are converted by the runtime's own
conversions, which read rclpy messages directly (cv_bridge would add a copy and a dependency).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from embody4d_ros.allocator import keep_freed_memory
from embody4d_ros.conversions import make_header, make_transform, rclpy_types
from embody4d_ros.live import diagnostic_status, frame_messages, output_topics, publisher_depth, static_tf_pose, warm_up
from embody4d_ros.params import DEFAULT_NODE_NAME, SCHEMA, SPECS, ParameterError, ParamSpec, validate
from embody4d_ros.robot_layer import JOINT_STATES, ROBOT_DESCRIPTION, TF, TF_STATIC, RobotLayer
from embody4d_ros.runtime import SequenceGaps, VirtualCameraRuntime, VirtualFrame
from model.depth import DepthError
from model.engines.base import EngineError

try:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
    from rclpy.event_handler import SubscriptionEventCallbacks
    from rclpy.executors import ExternalShutdownException
    from rclpy.impl.implementation_singleton import rclpy_implementation
    from rclpy.node import Node
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image, JointState
    from std_msgs.msg import String
    from tf2_msgs.msg import TFMessage

    ROS_IMPORT_ERROR: ImportError | None = None
except ImportError as exc:  # no ROS 2 sourced: the module still imports, main() explains
    ROS_IMPORT_ERROR = exc
    Node = object  # type: ignore[assignment,misc]

# rcl_interfaces/msg/ParameterType values, by the Python type of a schema default
PARAMETER_TYPES = {bool: 1, int: 2, float: 3, str: 4, list: 8}
_INT64_MAX = 2**63 - 1
# Parameters rclpy declares itself on every node; anything else the node does not know is reported.
ROS_OWN_PARAMETERS = ("use_sim_time", "start_type_description_service")
DIAGNOSTICS_PERIOD_S = 1.0
# tf2's TransformListener depths; joint states come at tens of Hz, a second of them covers any frame's slop
TF_DEPTH, JOINT_STATES_DEPTH = 100, 100
# rmw_fastrtps publishes synchronously unless told: DataWriter::write then sends a whole 0.9 MB image from the
# calling thread inside rclpy's publish, which holds the GIL all along (py-spy: 11 % of the node's wall clock at 30 Hz,
# 4 % asynchronously), so the executor cannot take the next frame meanwhile. Asynchronous publishing hands the sample
# to Fast DDS's own thread. Other RMWs ignore the variable; a value set in the environment wins.
FASTRTPS_PUBLICATION_MODE = ("RMW_FASTRTPS_PUBLICATION_MODE", "ASYNCHRONOUS")


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


def unknown_parameters(names: Any) -> list[str]:
    """Names set for this node that neither the schema nor rclpy declares (typos, or another node's parameters)."""
    return sorted(
        name
        for name in names
        if name not in SPECS and name not in ROS_OWN_PARAMETERS and not name.startswith("qos_overrides.")
    )


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
    """reliable (default): every message of a reliable publisher such as realsense-ros; sensor_data: best effort,
    which matches any publisher but drops large fragmented images under load."""
    reliability = ReliabilityPolicy.BEST_EFFORT if kind == "sensor_data" else ReliabilityPolicy.RELIABLE
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=reliability, durability=DurabilityPolicy.VOLATILE
    )


class VirtualCameraNode(Node):
    """Wires `VirtualCameraRuntime` to rclpy: subscriptions in; images, camera_info, /tf_static, /diagnostics out."""

    runtime: VirtualCameraRuntime  # set in __init__ once the parameters are valid

    def __init__(self, **node_options: Any) -> None:
        super().__init__(DEFAULT_NODE_NAME, **node_options)
        # Validate what the command line and params files set before declaring, with the schema's own rules: an
        # integer where a double is expected is accepted (rclpy would refuse it), and every refusal names the value.
        overrides = {name: _plain(p.value) for name, p in self._parameter_overrides.items()}
        unknown = unknown_parameters(overrides)
        if unknown:
            self.get_logger().warning(f"ignoring parameters this node does not have: {unknown}")
        params = validate({name: value for name, value in overrides.items() if name in SPECS})
        for spec in SCHEMA:
            self.declare_parameter(spec.name, params[spec.name], _descriptor(spec), ignore_override=True)
        self.params = params
        self.types = rclpy_types()
        self.topics = output_topics(params)
        self.runtime = VirtualCameraRuntime(params, self._publish, log=self.get_logger().warning)
        self.get_logger().info(f"engine {params['engine']} ready after {warm_up(self.runtime.engine):.1f} s warm-up")

        publisher_qos = QoSProfile(depth=publisher_depth(params))
        self.publishers_by_topic = {
            self.topics.image: self.create_publisher(Image, self.topics.image, publisher_qos),
            self.topics.camera_info: self.create_publisher(CameraInfo, self.topics.camera_info, publisher_qos),
        }
        if self.topics.openpi is not None:
            self.publishers_by_topic[self.topics.openpi] = self.create_publisher(
                Image, self.topics.openpi, publisher_qos
            )
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        self.tf_static = self.create_publisher(TFMessage, TF_STATIC, latched)
        self._tf_sent = False
        self.diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

        qos = _subscriber_qos(params["qos"], params["queue_size"])
        # camera_info first: the executor serves ready subscriptions in creation order, so a frame's camera_info is
        # taken before its image and the first frames are not dropped for want of intrinsics
        handlers = {
            "camera_info": self.runtime.on_camera_info,
            "depth": self.runtime.on_depth,
            "color": self.runtime.on_color,
        }
        if self.runtime.depth_estimator is not None:
            del handlers["depth"]
        self._numbered: set[str] = set()  # input topics whose publishers number their messages
        for topic, handler in handlers.items():
            self.create_subscription(
                Image if topic != "camera_info" else CameraInfo,
                params[f"{topic}_topic"],
                self._receiver(topic, handler),
                qos,
                event_callbacks=SubscriptionEventCallbacks(message_lost=self._on_lost(topic)),
            )

        if self.runtime.robot_layer is not None:
            self._subscribe_robot_topics(self.runtime.robot_layer, latched)

        self._status_name = f"{self.get_name()}: virtual camera {params['output_namespace']}"
        self._last_summary: dict[str, Any] | None = None
        self._last_diagnosed = time.monotonic()
        self.create_timer(DIAGNOSTICS_PERIOD_S, self._diagnose)
        self.runtime.start()

    def _subscribe_robot_topics(self, layer: RobotLayer, latched: "QoSProfile") -> None:
        """/robot_description, /joint_states, /tf and /tf_static into the robot layer, with the QoS their usual
        publishers use: robot_state_publisher latches the description and tf2's static broadcaster /tf_static
        (transient local, reliable: the same profile as this node's own /tf_static publisher, so they match; the
        layer leaves out this node's own transform when it comes back)."""
        latched_keep = QoSProfile(
            depth=TF_DEPTH, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        self.create_subscription(
            String, ROBOT_DESCRIPTION, lambda msg: layer.feed_message(ROBOT_DESCRIPTION, msg), latched
        )
        self.create_subscription(
            JointState,
            JOINT_STATES,
            lambda msg: layer.feed_message(JOINT_STATES, msg),
            QoSProfile(depth=JOINT_STATES_DEPTH, reliability=ReliabilityPolicy.RELIABLE),
        )
        self.create_subscription(
            TFMessage,
            TF,
            lambda msg: layer.feed_message(TF, msg),
            QoSProfile(depth=TF_DEPTH, reliability=ReliabilityPolicy.RELIABLE),
        )
        self.create_subscription(TFMessage, TF_STATIC, lambda msg: layer.feed_message(TF_STATIC, msg), latched_keep)

    def _receiver(self, topic: str, handler: Any) -> Any:
        """The subscription callback of input `topic`: counts the messages that never reached it (SequenceGaps),
        then hands this one to the runtime."""
        gaps = SequenceGaps()

        def receive(msg: Any, info: Any) -> None:
            publisher, sequence = info.get("publisher_gid"), info.get("publication_sequence_number")
            if publisher is not None and sequence and sequence < 2**63:  # else the RMW does not number messages
                self._numbered.add(topic)
                if missed := gaps.missed(repr(publisher), int(sequence)):
                    self.runtime.on_lost(topic, missed)
            if topic == "color" and info.get("received_timestamp"):
                # the node's share of `receive`: the message waited in its reader for the executor this long
                self.runtime.stats.record("reader_wait", (time.time_ns() - info["received_timestamp"]) / 1e6)
            handler(msg)

        return receive

    def _on_lost(self, topic: str) -> Any:
        # where publishers number their messages, the gaps count every loss, these too: counting both counts twice
        return lambda info: (
            None if topic in self._numbered else self.runtime.on_lost(topic, int(info.total_count_change))
        )

    def _publish(self, frame: VirtualFrame) -> None:
        """Runs on the runtime's worker thread; rclpy publishers may be used from any thread."""
        if not self._tf_sent and self.runtime.T_dst_src is not None:
            pose = static_tf_pose(self.runtime.T_dst_src)
            transform = make_transform(self.types, pose, frame.stamp_ns, frame.source_frame_id, frame.frame_id)
            self.tf_static.publish(TFMessage(transforms=[transform]))
            self._tf_sent = True
        for topic, msg in frame_messages(self.types, frame, self.topics).items():
            try:
                self.publishers_by_topic[topic].publish(msg)
            except rclpy_implementation.RCLError:
                if self.context.ok():
                    raise
                return  # SIGINT/SIGTERM shut the context down while a clip was going out: nothing to publish to

    def _diagnose(self) -> None:
        now = time.monotonic()
        summary = self.runtime.stats.summary()
        level, message, values = diagnostic_status(
            summary,
            self._last_summary,
            now - self._last_diagnosed,
            self.params["engine"],
            self.runtime.engine.name,
            self.runtime.clip_fill(),
        )
        self._last_summary, self._last_diagnosed = summary, now
        if level != "OK":  # the same words in the log, throttled, as on /diagnostics
            self.runtime.warnings.warn(f"diagnostics {level}", f"{level}: {message}")
        status = DiagnosticStatus(
            level=getattr(DiagnosticStatus, level),
            name=self._status_name,
            message=message,
            hardware_id=f"{self.runtime.engine.name} engine",
            values=[KeyValue(key=key, value=value) for key, value in values.items()],
        )
        header = make_header(self.types, self.get_clock().now().nanoseconds, "")
        self.diagnostics.publish(DiagnosticArray(header=header, status=[status]))

    def destroy_node(self) -> None:
        runtime = getattr(self, "runtime", None)  # None when __init__ refused the parameters
        if runtime is not None:
            runtime.stop()
        super().destroy_node()


def _plain(value: Any) -> Any:
    """rclpy returns double arrays as array('d'); the schema wants lists."""
    return list(value) if not isinstance(value, (str, bool, int, float)) else value


def main(args: list[str] | None = None) -> int:
    if ROS_IMPORT_ERROR is not None:
        print(
            f"virtual_camera_node needs ROS 2 ({ROS_IMPORT_ERROR}). Source your ROS 2 setup "
            "(source /opt/ros/<distro>/setup.bash) and install rclpy, sensor_msgs, diagnostic_msgs and tf2_msgs "
            "(rosdep install --from-paths . -y). Without ROS, the same runtime runs on DDS: "
            "python -m embody4d_ros.dds.virtual_camera --params-file config/virtual_camera.yaml",
            file=sys.stderr,
        )
        return 1
    os.environ.setdefault(*FASTRTPS_PUBLICATION_MODE)
    keep_freed_memory()  # megabytes per frame are allocated and freed: keep them instead of faulting them back in
    node = None
    try:
        rclpy.init(args=args)
        node = VirtualCameraNode()
        rclpy.spin(node)
    except ParameterError as exc:
        print(f"virtual_camera_node: invalid parameter: {exc}", file=sys.stderr)
        return 2
    except (EngineError, DepthError) as exc:
        print(f"virtual_camera_node cannot start: {exc}", file=sys.stderr)
        return 2
    except rclpy_implementation.RCLError as exc:  # malformed --ros-args or parameters file, as rcl parses them
        print(f"virtual_camera_node cannot start: {exc}".splitlines()[0], file=sys.stderr)
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
