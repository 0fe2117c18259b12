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

from embody4d_ros.conversions import camera_info_to_K, depth_to_image, image_to_rgb, make_camera_info, rgb_to_image, stamp_to_ns  # noqa: E402
from embody4d_ros.dds import messages  # noqa: E402
from embody4d_ros.dds.transport import dds_types  # noqa: E402
from embody4d_ros.params import SCHEMA  # noqa: E402


class FakeNode:
    """The rclpy.node.Node surface the node uses; `overrides` plays the part of --ros-args -p NAME:=VALUE."""

    overrides: dict = {}

    def __init__(self, name, **_):
        self.name, self.declared, self.publishers, self.published = name, {}, {}, []
        self._lock = threading.Lock()

    def declare_parameter(self, name, value, descriptor):
        self.declared[name] = descriptor
        return self.overrides.get(name, value)

    def get_parameter(self, name):
        value = self.overrides.get(name, self.declared[name].default)
        return types.SimpleNamespace(value=value)

    def create_publisher(self, msg_type, topic, qos):
        node = self

        class Publisher:
            def publish(self, msg):
                with node._lock:
                    node.published.append((topic, msg))

        self.publishers[topic] = (msg_type, qos)
        return Publisher()

    def get_logger(self):
        return types.SimpleNamespace(info=lambda m: None, warning=lambda m: None)

    def destroy_node(self):
        pass


class Descriptor:
    def __init__(self, **fields):
        self.__dict__.update(fields)


def _fake_ros_modules(declared_defaults):
    def module(name, **attrs):
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        return mod

    class Subscriber:
        def __init__(self, node, msg_type, topic, qos_profile):
            self.msg_type, self.topic, self.qos = msg_type, topic, qos_profile

    class Synchronizer:
        def __init__(self, inputs, queue_size, slop):
            self.inputs, self.queue_size, self.slop, self.callbacks = inputs, queue_size, slop, []

        def registerCallback(self, callback):
            self.callbacks.append(callback)

    class Broadcaster:
        def __init__(self, node):
            self.sent = []

        def sendTransform(self, transform):
            self.sent.append(transform)

    class Updater:
        def __init__(self, node):
            self.tasks = {}

        def setHardwareID(self, hardware_id):
            self.hardware_id = hardware_id

        def add(self, name, function):
            self.tasks[name] = function

    class QoSProfile:
        def __init__(self, **fields):
            self.__dict__.update(fields)

    enum = lambda *names: types.SimpleNamespace(**{n: n for n in names})
    return {
        "rclpy": module("rclpy", init=lambda args=None: None, ok=lambda: False, shutdown=lambda: None, spin=lambda node: None),
        "rclpy.node": module("rclpy.node", Node=FakeNode),
        "rclpy.executors": module("rclpy.executors", ExternalShutdownException=RuntimeError),
        "rclpy.qos": module("rclpy.qos", QoSProfile=QoSProfile, ReliabilityPolicy=enum("BEST_EFFORT", "RELIABLE"),
                            HistoryPolicy=enum("KEEP_LAST"), DurabilityPolicy=enum("VOLATILE")),
        "rcl_interfaces": module("rcl_interfaces"),
        "rcl_interfaces.msg": module("rcl_interfaces.msg", ParameterDescriptor=lambda **f: Descriptor(default=declared_defaults[f["name"]], **f),
                                     IntegerRange=Descriptor, FloatingPointRange=Descriptor),
        "message_filters": module("message_filters", Subscriber=Subscriber, ApproximateTimeSynchronizer=Synchronizer),
        "tf2_ros": module("tf2_ros", StaticTransformBroadcaster=Broadcaster),
        "diagnostic_updater": module("diagnostic_updater", Updater=Updater),
        "diagnostic_msgs": module("diagnostic_msgs"),
        "diagnostic_msgs.msg": module("diagnostic_msgs.msg", DiagnosticStatus=types.SimpleNamespace(OK=0, WARN=1, ERROR=2)),
        "sensor_msgs": module("sensor_msgs"),
        "sensor_msgs.msg": module("sensor_msgs.msg", Image=messages.Image, CameraInfo=messages.CameraInfo, RegionOfInterest=messages.RegionOfInterest),
        "std_msgs": module("std_msgs"),
        "std_msgs.msg": module("std_msgs.msg", Header=messages.Header),
        "builtin_interfaces": module("builtin_interfaces"),
        "builtin_interfaces.msg": module("builtin_interfaces.msg", Time=messages.Time),
        "geometry_msgs": module("geometry_msgs"),
        "geometry_msgs.msg": module("geometry_msgs.msg", TransformStamped=messages.TransformStamped, Transform=messages.Transform,
                                    Vector3=messages.Vector3, Quaternion=messages.Quaternion),
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
    monkeypatch.setattr(FakeNode, "overrides", {"target.yaw_deg": 12.0, "output_namespace": "/front", "qos": "reliable"})
    node = node_module.VirtualCameraNode()
    try:
        assert set(node.declared) == {spec.name for spec in SCHEMA}
        assert node.declared["mode"].additional_constraints == "one of: image, clip"
        assert set(node.publishers) == {"/front/color/image_raw", "/front/color/camera_info"}
        color, depth, info = node.sync.inputs
        assert (color.topic, depth.topic, info.topic) == (node.params["color_topic"], node.params["depth_topic"], node.params["camera_info_topic"])
        assert color.qos.reliability == "RELIABLE" and color.qos.depth == node.params["queue_size"]
        assert node.sync.slop == node.params["sync_slop_s"]

        H, W = 32, 48
        types_ = dds_types()
        K = np.array([[40.0, 0, (W - 1) / 2], [0, 40.0, (H - 1) / 2], [0, 0, 1]])
        rgb = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
        stamp = 3_000_000_000
        (callback,) = node.sync.callbacks
        callback(rgb_to_image(types_, rgb, stamp, "cam_optical"), depth_to_image(types_, np.full((H, W), 1.0), stamp, "cam_optical"),
                 make_camera_info(types_, K, W, H, stamp, "cam_optical"))
        for _ in range(200):  # the runtime's worker thread publishes
            if len(node.published) >= 2:
                break
            time.sleep(0.05)
        published = dict(node.published)
        image, camera_info = published["/front/color/image_raw"], published["/front/color/camera_info"]
        assert stamp_to_ns(image.header.stamp) == stamp and image.header.frame_id == node.params["virtual_frame_id"]
        assert image_to_rgb(image).shape == (H, W, 3)
        np.testing.assert_allclose(camera_info_to_K(camera_info), K)
        (transform,) = node.tf_broadcaster.sent
        assert transform.header.frame_id == "cam_optical" and transform.child_frame_id == node.params["virtual_frame_id"]
        assert transform.transform.translation.x > 0  # yaw 12 deg to the right

        stat = types.SimpleNamespace(values={}, level=None)
        stat.summary = lambda level, message: setattr(stat, "level", level)
        stat.add = lambda key, value: stat.values.__setitem__(key, value)
        (diagnose,) = node.diagnostics.tasks.values()
        diagnose(stat)
        assert stat.level == 0 and stat.values["frames out"] == "1" and stat.values["engine"] == "warp"
    finally:
        node.destroy_node()
