"""The DDS transport in one process: QoS matching, and the virtual camera's topics, headers and static TF."""

import random
import threading
import time

import numpy as np
import pytest

pytest.importorskip("cyclonedds")

from embody4d_ros.conversions import depth_to_image, make_camera_info, rgb_to_image, stamp_to_ns  # noqa: E402
from embody4d_ros.dds import messages  # noqa: E402
from embody4d_ros.dds.transport import DdsNode, dds_types  # noqa: E402
from embody4d_ros.dds.virtual_camera import TF_STATIC, DdsVirtualCamera  # noqa: E402
from embody4d_ros.live import static_tf_pose  # noqa: E402
from embody4d_ros.params import validate  # noqa: E402


@pytest.fixture
def domain():
    return random.randint(1, 200)  # keep concurrent test runs apart


class Inbox:
    """Collects samples from a listener thread; `wait(n)` blocks until n arrived or a timeout."""

    def __init__(self):
        self.items, self._cond = [], threading.Condition()

    def __call__(self, msg):
        with self._cond:
            self.items.append(msg)
            self._cond.notify_all()

    def wait(self, count, timeout_s=10.0):
        with self._cond:
            self._cond.wait_for(lambda: len(self.items) >= count, timeout_s)
            return list(self.items)


def _wait_matched(writer, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while not writer.get_matched_subscriptions():
        assert time.monotonic() < deadline, "DDS discovery did not match the reader"
        time.sleep(0.02)


def test_best_effort_subscriber_receives_from_reliable_publisher(domain):
    node = DdsNode(domain)
    inbox = Inbox()
    node.create_subscription(messages.Image, "/camera/color/image_raw", inbox, qos="sensor_data")
    writer = node.create_publisher(messages.Image, "/camera/color/image_raw", qos="reliable")
    _wait_matched(writer)
    writer.write(messages.Image(width=2, height=1, encoding="mono8", step=2, data=b"\x01\x02"))
    (received,) = inbox.wait(1)
    assert received.data == b"\x01\x02"


def test_virtual_camera_outputs_and_static_tf(domain):
    H, W = 48, 64
    params = validate({"target.yaw_deg": 10.0, "output_namespace": "/side_view", "openpi_224": True})
    camera = DdsVirtualCamera(DdsNode(domain), params, log=lambda message: None)
    try:
        client = DdsNode(domain)
        images, infos, openpi = Inbox(), Inbox(), Inbox()
        client.create_subscription(messages.Image, "/side_view/color/image_raw", images, qos="reliable")
        client.create_subscription(messages.CameraInfo, "/side_view/color/camera_info", infos, qos="reliable")
        client.create_subscription(messages.Image, "/side_view/openpi/image_raw", openpi, qos="reliable")
        writers = {
            topic: client.create_publisher(kind, params[topic])
            for topic, kind in (
                ("camera_info_topic", messages.CameraInfo),
                ("depth_topic", messages.Image),
                ("color_topic", messages.Image),
            )
        }
        for writer in writers.values():
            _wait_matched(writer)
        _wait_matched(camera.writers[camera.topics.image])

        types = dds_types()
        yy, xx = np.mgrid[0:H, 0:W]
        rgb = np.stack([xx * 4, yy * 5, xx + yy], -1).astype(np.uint8)
        depth = np.full((H, W), 1.5, np.float32)
        K = np.array([[60.0, 0, (W - 1) / 2], [0, 60.0, (H - 1) / 2], [0, 0, 1]])
        stamps = [5_000_000_000 + i * 100_000_000 for i in range(3)]
        for stamp in stamps:
            writers["camera_info_topic"].write(make_camera_info(types, K, W, H, stamp, "camera_color_optical_frame"))
            writers["depth_topic"].write(depth_to_image(types, depth, stamp, "camera_color_optical_frame"))
            writers["color_topic"].write(rgb_to_image(types, rgb, stamp, "camera_color_optical_frame"))
            images.wait(len(images.items) + 1)  # one at a time: no frame waits for the engine
        got = images.wait(3)
        assert [stamp_to_ns(m.header.stamp) for m in got] == stamps
        assert all(
            m.header.frame_id == params["virtual_frame_id"] and (m.width, m.height, m.encoding) == (W, H, "rgb8")
            for m in got
        )
        info = infos.wait(3)[-1]
        assert info.header.frame_id == params["virtual_frame_id"] and stamp_to_ns(info.header.stamp) == stamps[-1]
        np.testing.assert_allclose(np.reshape(info.k, (3, 3)), K)  # same size out: same intrinsics
        assert openpi.wait(3)[0].width == 224

        # a late subscriber still gets the latched transform
        tf = Inbox()
        client.create_subscription(messages.TFMessage, TF_STATIC, tf, qos="reliable", depth=1, transient_local=True)
        (transforms,) = tf.wait(1)
        (transform,) = transforms.transforms
        assert transform.header.frame_id == "camera_color_optical_frame"
        assert transform.child_frame_id == params["virtual_frame_id"]
        t, q = transform.transform.translation, transform.transform.rotation
        np.testing.assert_allclose(
            [t.x, t.y, t.z, q.x, q.y, q.z, q.w], static_tf_pose(camera.runtime.T_dst_src), atol=1e-9
        )
        assert t.x > 0  # yaw to the right
    finally:
        camera.close()


def test_virtual_camera_feeds_the_robot_topics_to_the_robot_layer(domain):
    from rgbd_publisher import FRAME_ID, ROBOT_JOINT, ROBOT_JOINT_POSITION, ROBOT_ROOT_IN_CAMERA, ROBOT_URDF, scene

    from embody4d_ros.conversions import make_transform

    H, W = 120, 160
    params = validate({"robot.hand_eye_every": 0})
    camera = DdsVirtualCamera(DdsNode(domain), params, log=lambda message: None)
    try:
        client = DdsNode(domain)
        types = dds_types()
        images = Inbox()
        client.create_subscription(messages.Image, "/virtual_camera/color/image_raw", images, qos="reliable")
        latched = {"qos": "reliable", "depth": 1, "transient_local": True}
        client.create_publisher(messages.String, "/robot_description", **latched).write(messages.String(ROBOT_URDF))
        x, y, z = ROBOT_ROOT_IN_CAMERA
        camera_in_root = make_transform(types, [-x, -y, -z, 0, 0, 0, 1], 0, "base", FRAME_ID)
        client.create_publisher(messages.TFMessage, TF_STATIC, **latched).write(messages.TFMessage([camera_in_root]))
        joint_states = client.create_publisher(messages.JointState, "/joint_states", qos="reliable")
        writers = [
            client.create_publisher(kind, params[topic])
            for topic, kind in (
                ("camera_info_topic", messages.CameraInfo),
                ("depth_topic", messages.Image),
                ("color_topic", messages.Image),
            )
        ]
        for writer in [*writers, joint_states]:
            _wait_matched(writer)
        rgb, depth, K = scene(H, W)
        deadline = time.monotonic() + 30
        while camera.runtime.robot_layer.model is None and time.monotonic() < deadline:
            time.sleep(0.05)  # the latched description is parsed on the listener thread
        for index in range(4):
            stamp = 5_000_000_000 + index * 100_000_000
            if index >= 2:
                joint_states.write(
                    messages.JointState(
                        header=messages.Header(stamp=messages.Time(5, index * 10**8)),
                        name=[ROBOT_JOINT],
                        position=[ROBOT_JOINT_POSITION],
                    )
                )
            writers[0].write(make_camera_info(types, K, W, H, stamp, FRAME_ID))
            writers[1].write(depth_to_image(types, depth, stamp, FRAME_ID))
            writers[2].write(rgb_to_image(types, rgb, stamp, FRAME_ID))
            images.wait(index + 1, timeout_s=60.0)  # one at a time: no frame waits for the engine
        views = [np.frombuffer(m.data, np.uint8).reshape(H, W, 3) for m in images.wait(4)]
        layer = camera.runtime.robot_layer
        assert (layer.counters["joint_state_missing"], layer.counters["drawn"]) == (2, 2), layer.counters
        assert np.array_equal(views[0], views[1]) and np.array_equal(views[2], views[3])
        changed = np.abs(views[2].astype(int) - views[0].astype(int)).max(-1) > 12
        assert 0.05 < changed.mean() < 0.6, f"{changed.mean():.1%} of the view changed with the robot drawn"
        # the camera's own transform comes back on /tf_static; it is not the robot's
        assert params["virtual_frame_id"] not in layer.tf.frames() and FRAME_ID in layer.tf.frames()
    finally:
        camera.close()
