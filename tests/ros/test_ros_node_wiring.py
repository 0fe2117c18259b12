"""virtual_camera_node's wiring, run against a stand-in of the rclpy API where ROS 2 is not installed.

The stand-in records what the node declares, subscribes and publishes; messages are the DDS transport's classes,
which carry the ROS 2 field names. On a machine with ROS 2, tests/ros/test_ros_node.py runs the real node instead.
"""

import importlib
import sys
import threading
import time
import types

import numpy as np
import pytest

pytest.importorskip("cyclonedds")

from embody4d_ros.conversions import (
    camera_info_to_K,
    depth_to_image,
    image_to_rgb,
    make_camera_info,
    rgb_to_image,
    stamp_to_ns,
)  # noqa: E402
from embody4d_ros.dds import messages  # noqa: E402
from embody4d_ros.dds.transport import dds_types  # noqa: E402
from embody4d_ros.params import SCHEMA  # noqa: E402


class FakeNode:
    """The rclpy.node.Node surface the node uses; `overrides` plays the part of --ros-args -p NAME:=VALUE."""

    overrides: dict = {}

    def __init__(self, name, **_):
        self.name, self.declared, self.values, self.publishers, self.published = name, {}, {}, {}, []
        self.subscriptions, self.timers, self.warnings = {}, [], []
        self._parameter_overrides = {k: types.SimpleNamespace(value=v) for k, v in self.overrides.items()}
        self.context = types.SimpleNamespace(ok=lambda: True)
        self._lock = threading.Lock()

    def declare_parameter(self, name, value, descriptor, ignore_override=False):
        self.declared[name], self.values[name] = (
            descriptor,
            value if ignore_override else self.overrides.get(name, value),
        )

    def get_parameter(self, name):
        return types.SimpleNamespace(value=self.values[name])

    def get_name(self):
        return self.name

    def get_clock(self):
        return types.SimpleNamespace(now=lambda: types.SimpleNamespace(nanoseconds=time.time_ns()))

    def create_publisher(self, msg_type, topic, qos):
        node = self

        class Publisher:
            def publish(self, msg):
                with node._lock:
                    node.published.append((topic, msg))

        self.publishers[topic] = (msg_type, qos)
        return Publisher()

    def create_subscription(self, msg_type, topic, callback, qos, event_callbacks=None):
        self.subscriptions[topic] = types.SimpleNamespace(
            msg_type=msg_type, callback=callback, qos=qos, events=event_callbacks
        )

    def create_timer(self, period_s, callback):
        self.timers.append((period_s, callback))

    def get_logger(self):
        return types.SimpleNamespace(info=lambda m: None, warning=self.warnings.append)

    def destroy_node(self):
        pass


class Fields:
    """A message or descriptor stand-in: keyword fields become attributes."""

    def __init__(self, **fields):
        self.__dict__.update(fields)


def _fake_ros_modules(declared_defaults):
    def module(name, **attrs):
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        return mod

    class DiagnosticStatus(Fields):
        OK, WARN, ERROR = b"\x00", b"\x01", b"\x02"

    enum = lambda *names: types.SimpleNamespace(**{n: n for n in names})
    return {
        "rclpy": module(
            "rclpy", init=lambda args=None: None, ok=lambda: False, shutdown=lambda: None, spin=lambda node: None
        ),
        "rclpy.node": module("rclpy.node", Node=FakeNode),
        "rclpy.executors": module("rclpy.executors", ExternalShutdownException=RuntimeError),
        "rclpy.event_handler": module("rclpy.event_handler", SubscriptionEventCallbacks=Fields),
        "rclpy.impl": module("rclpy.impl"),
        "rclpy.impl.implementation_singleton": module(
            "rclpy.impl.implementation_singleton", rclpy_implementation=types.SimpleNamespace(RCLError=RuntimeError)
        ),
        "rclpy.qos": module(
            "rclpy.qos",
            QoSProfile=Fields,
            ReliabilityPolicy=enum("BEST_EFFORT", "RELIABLE"),
            HistoryPolicy=enum("KEEP_LAST"),
            DurabilityPolicy=enum("VOLATILE", "TRANSIENT_LOCAL"),
        ),
        "rcl_interfaces": module("rcl_interfaces"),
        "rcl_interfaces.msg": module(
            "rcl_interfaces.msg",
            ParameterDescriptor=lambda **f: Fields(default=declared_defaults[f["name"]], **f),
            IntegerRange=Fields,
            FloatingPointRange=Fields,
        ),
        "diagnostic_msgs": module("diagnostic_msgs"),
        "diagnostic_msgs.msg": module(
            "diagnostic_msgs.msg", DiagnosticArray=Fields, DiagnosticStatus=DiagnosticStatus, KeyValue=Fields
        ),
        "tf2_msgs": module("tf2_msgs"),
        "tf2_msgs.msg": module("tf2_msgs.msg", TFMessage=messages.TFMessage),
        "sensor_msgs": module("sensor_msgs"),
        "sensor_msgs.msg": module(
            "sensor_msgs.msg",
            Image=messages.Image,
            CameraInfo=messages.CameraInfo,
            RegionOfInterest=messages.RegionOfInterest,
            JointState=messages.JointState,
        ),
        "std_msgs": module("std_msgs"),
        "std_msgs.msg": module("std_msgs.msg", Header=messages.Header, String=messages.String),
        "builtin_interfaces": module("builtin_interfaces"),
        "builtin_interfaces.msg": module("builtin_interfaces.msg", Time=messages.Time),
        "geometry_msgs": module("geometry_msgs"),
        "geometry_msgs.msg": module(
            "geometry_msgs.msg",
            TransformStamped=messages.TransformStamped,
            Transform=messages.Transform,
            Vector3=messages.Vector3,
            Quaternion=messages.Quaternion,
        ),
    }


@pytest.fixture
def node_module(monkeypatch):
    if "rclpy" in sys.modules or importlib.util.find_spec("rclpy") is not None:
        pytest.skip("ROS 2 is installed: tests/ros/test_ros_node.py runs the real node")
    for name, module in _fake_ros_modules({spec.name: spec.default for spec in SCHEMA}).items():
        monkeypatch.setitem(sys.modules, name, module)
    import embody4d_ros.node as node_module

    node_module = importlib.reload(node_module)
    assert node_module.ROS_IMPORT_ERROR is None
    yield node_module
    monkeypatch.undo()
    importlib.reload(node_module)  # back to the ROS-less module for other tests


def test_node_wiring(node_module, monkeypatch):
    # an integer for a double, as ROS users write it; a parameter the node does not have is reported
    monkeypatch.setattr(FakeNode, "overrides", {"target.yaw_deg": 12, "output_namespace": "/front", "target.yaw": 3.0})
    node = node_module.VirtualCameraNode()
    try:
        assert set(node.declared) == {spec.name for spec in SCHEMA}
        assert node.values["target.yaw_deg"] == 12.0 and isinstance(node.values["target.yaw_deg"], float)
        assert node.declared["mode"].additional_constraints == "one of: image, clip"
        assert any("target.yaw" in w for w in node.warnings)
        assert set(node.publishers) == {
            "/front/color/image_raw",
            "/front/color/camera_info",
            "/tf_static",
            "/diagnostics",
        }
        assert node.publishers["/tf_static"][1].durability == "TRANSIENT_LOCAL"
        p = node.params
        # camera_info is subscribed first, so the executor hands it over before the image it belongs to
        camera_topics = [p["camera_info_topic"], p["depth_topic"], p["color_topic"]]
        # then the robot layer's (robot.enable auto): the latched ones as their publishers latch them, which for
        # /tf_static is also how this node publishes its own transform there
        assert list(node.subscriptions) == [*camera_topics, "/robot_description", "/joint_states", "/tf", "/tf_static"]
        for topic in camera_topics:
            qos = node.subscriptions[topic].qos
            assert qos.reliability == "RELIABLE" and qos.depth == p["queue_size"]
        published_tf_static = node.publishers["/tf_static"][1]
        for topic in ("/robot_description", "/tf_static"):
            qos = node.subscriptions[topic].qos
            assert (qos.reliability, qos.durability) == (published_tf_static.reliability, "TRANSIENT_LOCAL")

        H, W = 32, 48
        types_ = dds_types()
        K = np.array([[40.0, 0, (W - 1) / 2], [0, 40.0, (H - 1) / 2], [0, 0, 1]])
        rgb = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
        stamp = 3_000_000_000
        # the message info of an RMW that does not number messages: losses come from the message_lost event
        info = {"publisher_gid": None, "publication_sequence_number": None}
        camera_info_msg = make_camera_info(types_, K, W, H, stamp, "cam_optical")
        node.subscriptions[p["camera_info_topic"]].callback(camera_info_msg, info)
        node.subscriptions[p["depth_topic"]].callback(
            depth_to_image(types_, np.full((H, W), 1.0), stamp, "cam_optical"), info
        )
        node.subscriptions[p["color_topic"]].callback(rgb_to_image(types_, rgb, stamp, "cam_optical"), info)
        node.subscriptions[p["depth_topic"]].events.message_lost(types.SimpleNamespace(total_count_change=2))
        for _ in range(200):  # the runtime's worker thread publishes
            if len(node.published) >= 3:
                break
            time.sleep(0.05)
        published = dict(node.published)
        image, camera_info = published["/front/color/image_raw"], published["/front/color/camera_info"]
        assert stamp_to_ns(image.header.stamp) == stamp and image.header.frame_id == p["virtual_frame_id"]
        assert image_to_rgb(image).shape == (H, W, 3)
        np.testing.assert_allclose(camera_info_to_K(camera_info), K)
        (transform,) = published["/tf_static"].transforms
        assert transform.header.frame_id == "cam_optical" and transform.child_frame_id == p["virtual_frame_id"]
        assert transform.transform.translation.x > 0  # yaw 12 deg to the right

        ((period_s, diagnose),) = node.timers
        diagnose()
        (status,) = published_last(node, "/diagnostics").status
        values = {kv.key: kv.value for kv in status.values}
        assert period_s == 1.0 and status.level == b"\x01" and "depth_lost 2" in status.message  # lost: WARN
        assert values["frames out"] == "1" and values["engine"] == "warp" and values["input depth messages"] == "1"
    finally:
        node.destroy_node()


def published_last(node, topic):
    return [msg for t, msg in node.published if t == topic][-1]


def test_node_refuses_a_bad_value_before_declaring_it(node_module, monkeypatch):
    from embody4d_ros.params import ParameterError

    monkeypatch.setattr(FakeNode, "overrides", {"target.pivot_m": -1.0})
    with pytest.raises(ParameterError, match=r"target.pivot_m must be >= 0.0, got -1.0"):
        node_module.VirtualCameraNode()
