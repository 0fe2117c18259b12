"""Messages built for rclpy (`rclpy_types`) hold exactly the pixels given, as rclpy's CDR serialisation sees them."""

import os

import numpy as np
import pytest

if os.environ.get("EMBODY4D_REQUIRE_ROS"):
    import rclpy  # noqa: F401  (make test-ros: a missing ROS 2 fails here instead of skipping)
else:
    pytest.importorskip("rclpy")

from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from embody4d_ros.conversions import depth_to_image, image_to_numpy, rclpy_types, rgb_to_image  # noqa: E402

pytestmark = pytest.mark.ros
RNG = np.random.default_rng(4)


@pytest.mark.parametrize("shape", [(480, 640, 3), (5, 7, 3)])
def test_rgb8_image_survives_rclpy_serialisation(shape):
    rgb = RNG.integers(0, 256, shape, dtype=np.uint8)
    sent = rgb_to_image(rclpy_types(), rgb[:, ::-1], 1_500_000_000_123, "cam")  # a non-contiguous view
    received = deserialize_message(serialize_message(sent), Image)
    assert (received.height, received.width, received.step) == (shape[0], shape[1], shape[1] * 3)
    assert bytes(received.data) == np.ascontiguousarray(rgb[:, ::-1]).tobytes()
    np.testing.assert_array_equal(image_to_numpy(received), rgb[:, ::-1])


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_depth_image_survives_rclpy_serialisation(encoding):
    depth = RNG.uniform(0.3, 5.0, (6, 9)).astype(np.float32)
    received = deserialize_message(serialize_message(depth_to_image(rclpy_types(), depth, 0, "cam", encoding)), Image)
    wire = np.frombuffer(bytes(received.data), "<u2" if encoding == "16UC1" else "<f4").reshape(6, 9)
    expected = np.rint(depth * 1000).astype(np.uint16) if encoding == "16UC1" else depth
    np.testing.assert_array_equal(wire, expected)
