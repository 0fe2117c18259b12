"""cdr_header reads what rclpy's own serialisation writes: stamp, frame_id, size and encoding of real sensor_msgs
Images and CameraInfos, with frame_id and encoding lengths that put every amount of alignment padding after them."""

import os

import numpy as np
import pytest

if os.environ.get("EMBODY4D_REQUIRE_ROS"):
    import rclpy  # noqa: F401  (make test-ros: a missing ROS 2 fails here instead of skipping)
else:
    pytest.importorskip("rclpy")

from cdr_header import read_image_head, read_stamped_size  # noqa: E402
from rclpy.serialization import serialize_message  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

pytestmark = pytest.mark.ros
RNG = np.random.default_rng(13)
# 0 to 8 characters: the string's NUL-terminated length runs through every remainder modulo 4 (and modulo 8)
FRAME_IDS = ["", "a", "ab", "cam", "cam0", "camera", "optical", "camera_o", "camera_color_optical_frame"]


def _stamp(msg, sec: int, nanosec: int) -> None:
    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec


@pytest.mark.parametrize("frame_id", FRAME_IDS)
@pytest.mark.parametrize("encoding", ["rgb8", "16UC1", "mono16", "bgra8", "32FC1", "8UC3"])
def test_image_head_matches_what_rclpy_serialised(frame_id, encoding):
    height, width = (int(n) for n in RNG.integers(1, 40, 2))
    channels, item = {"rgb8": (3, 1), "16UC1": (1, 2), "mono16": (1, 2), "bgra8": (4, 1), "32FC1": (1, 4)}.get(
        encoding, (3, 1)
    )
    step = width * channels * item + int(RNG.integers(0, 3))  # rows may be padded
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=int(RNG.integers(0, 2)), step=step)
    msg.data = RNG.integers(0, 256, height * step, dtype=np.uint8).tobytes()
    sec, nanosec = int(RNG.integers(0, 2**31)), int(RNG.integers(0, 10**9))
    _stamp(msg, sec, nanosec)
    msg.header.frame_id = frame_id

    head = read_image_head(serialize_message(msg))
    assert head.stamp_ns == sec * 10**9 + nanosec and head.frame_id == frame_id
    assert (head.height, head.width, head.encoding) == (height, width, encoding)
    assert (head.is_bigendian, head.step, head.data_length) == (msg.is_bigendian, step, height * step)


@pytest.mark.parametrize("frame_id", FRAME_IDS)
def test_camera_info_header_and_size_match_what_rclpy_serialised(frame_id):
    msg = CameraInfo(height=480 + len(frame_id), width=640 - len(frame_id), distortion_model="plumb_bob")
    msg.d = [0.1, -0.2, 0.0, 0.0, 0.05]
    msg.k = [600.0, 0.0, 320.0, 0.0, 600.0, 240.0, 0.0, 0.0, 1.0]
    _stamp(msg, 1_700_000_000 + len(frame_id), 999_999_999 - len(frame_id))
    msg.header.frame_id = frame_id

    head = read_stamped_size(serialize_message(msg))
    expected_ns = (1_700_000_000 + len(frame_id)) * 10**9 + 999_999_999 - len(frame_id)
    assert (head.stamp_ns, head.frame_id) == (expected_ns, frame_id)
    assert (head.height, head.width) == (480 + len(frame_id), 640 - len(frame_id))


def test_a_truncated_or_foreign_message_is_refused():
    msg = Image(height=4, width=4, encoding="rgb8", step=12, data=bytes(48))
    msg.header.frame_id = "cam"
    cdr = serialize_message(msg)
    with pytest.raises(ValueError, match="overruns"):
        read_image_head(cdr[:-10])
    with pytest.raises(ValueError, match="little-endian"):
        read_image_head(b"\x00\x00" + cdr[2:])  # big-endian CDR
