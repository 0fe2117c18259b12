"""Image / CameraInfo <-> numpy for any message flavour with ROS 2 field names (no ROS needed)."""

import array
from types import SimpleNamespace

import numpy as np
import pytest

from embody4d_ros.conversions import (
    ConversionError,
    camera_info_to_K,
    depth_to_image,
    image_to_depth_m,
    image_to_numpy,
    image_to_rgb,
    make_camera_info,
    rgb_to_image,
    rosbags_types,
    stamp_to_ns,
)

TYPES = rosbags_types()
RNG = np.random.default_rng(1)
RGB = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)


def raw_image(encoding, data, height, width, step, bigendian=0):
    """An rclpy-like message: plain attributes, data in an array.array."""
    return SimpleNamespace(
        encoding=encoding,
        height=height,
        width=width,
        step=step,
        is_bigendian=bigendian,
        data=array.array("B", bytes(data)),
    )


def test_rgb_round_trip_keeps_stamp_and_frame():
    msg = rgb_to_image(TYPES, RGB, 1_234_567_890_123, "cam")
    assert stamp_to_ns(msg.header.stamp) == 1_234_567_890_123 and msg.header.frame_id == "cam"
    np.testing.assert_array_equal(image_to_rgb(msg), RGB)


def test_bgr_and_bgra_become_rgb():
    bgr = raw_image("bgr8", RGB[..., ::-1].tobytes(), 5, 7, 21)
    np.testing.assert_array_equal(image_to_rgb(bgr), RGB)
    bgra = np.concatenate([RGB[..., ::-1], np.full((5, 7, 1), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(image_to_rgb(raw_image("bgra8", bgra.tobytes(), 5, 7, 28)), RGB)


def test_row_padding_is_removed():
    padded = np.zeros((5, 24), np.uint8)
    padded[:, :21] = RGB.reshape(5, 21)
    np.testing.assert_array_equal(image_to_rgb(raw_image("rgb8", padded.tobytes(), 5, 7, 24)), RGB)


@pytest.mark.parametrize("encoding", ["16UC1", "mono16"])
def test_millimetre_depth(encoding):
    mm = np.array([[0, 1000], [65535, 250]], np.uint16)
    msg = raw_image(encoding, mm.tobytes(), 2, 2, 4)
    np.testing.assert_allclose(image_to_depth_m(msg), mm / 1000.0, rtol=1e-6)
    big = raw_image(encoding, mm.astype(">u2").tobytes(), 2, 2, 4, bigendian=1)
    np.testing.assert_allclose(image_to_depth_m(big), mm / 1000.0, rtol=1e-6)


def test_metre_depth_and_invalid_values():
    depth = np.array([[0.5, np.nan], [np.inf, 0.0]], np.float32)
    out = image_to_depth_m(depth_to_image(TYPES, depth, 0, "cam", encoding="32FC1"))
    np.testing.assert_array_equal(out, [[0.5, 0.0], [0.0, 0.0]])
    mm = image_to_numpy(depth_to_image(TYPES, depth, 0, "cam"))
    np.testing.assert_array_equal(mm, [[500, 0], [0, 0]])


def test_errors_say_what_is_wrong():
    with pytest.raises(ConversionError, match="unsupported image encoding 'yuv422'"):
        image_to_numpy(raw_image("yuv422", b"\0" * 20, 2, 5, 10))
    with pytest.raises(ConversionError, match="needs 105 bytes"):
        image_to_rgb(raw_image("rgb8", b"\0" * 100, 5, 7, 21))
    with pytest.raises(ConversionError, match="expected 16UC1"):
        image_to_depth_m(rgb_to_image(TYPES, RGB, 0, "cam"))
    with pytest.raises(ConversionError, match="colour image"):
        image_to_rgb(depth_to_image(TYPES, np.ones((2, 2), np.float32), 0, "cam"))
    with pytest.raises(ConversionError, match="step"):
        image_to_rgb(raw_image("rgb8", b"\0" * 100, 5, 7, 20))
    with pytest.raises(ConversionError, match="uint8"):
        rgb_to_image(TYPES, RGB.astype(np.float32), 0, "cam")


def test_camera_info():
    K = np.array([[600.0, 0, 320], [0, 601.0, 240], [0, 0, 1]])
    info = make_camera_info(TYPES, K, 640, 480, 5, "cam")
    np.testing.assert_array_equal(camera_info_to_K(info), K)
    assert info.distortion_model == "plumb_bob" and (info.width, info.height) == (640, 480)
    np.testing.assert_array_equal(np.asarray(info.p).reshape(3, 4), np.hstack([K, np.zeros((3, 1))]))
    with pytest.raises(ConversionError, match="calibrated"):
        camera_info_to_K(SimpleNamespace(k=[0.0] * 9))
