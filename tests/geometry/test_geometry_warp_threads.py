"""The numba warp split over bands of source rows on several threads gives exactly the one-thread result: skirts
(unseen space) of one band hide surfaces of another, and on equal depth the earlier source frame and row wins."""

from __future__ import annotations

import numpy as np
import pytest

from model.depth_sensor import StereoSensor
from model.geometry import GeometryError, OrbitTarget, forward_warp_clip, repair_depth, target_transform

FIELDS = ("image", "depth", "coverage", "mask")


def _scene(height: int = 120, width: int = 160, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A textured wall at 2 m with a box at 1 m that straddles the middle rows (where the bands meet)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    depth = np.full((height, width), 2.0, np.float32)
    depth[height // 4 : 3 * height // 4, width // 3 : 2 * width // 3] = 1.0
    K = np.array([[0.8 * width, 0.0, (width - 1) / 2], [0.0, 0.8 * width, (height - 1) / 2], [0.0, 0.0, 1.0]])
    return image, depth, K


def _assert_same(serial, banded) -> None:
    for field in FIELDS:
        np.testing.assert_array_equal(getattr(banded, field), getattr(serial, field), err_msg=field)


@pytest.mark.parametrize("threads", [2, 3, 7])
def test_banded_warp_equals_serial_on_sensor_depth(threads):
    image, depth, K = _scene()
    depth = StereoSensor().corrupt(depth, K, np.random.default_rng(1))
    depth, reliability = repair_depth(depth, image)
    # orbiting upwards moves the box's top edge over rows of the other band: skirts must cross the band seam
    T = target_transform(OrbitTarget(yaw_deg=12.0, pitch_deg=8.0, forward_m=0.1, pivot_m=1.5))
    args = (image[None], depth[None], K, K, T, (120, 160))
    serial = forward_warp_clip(*args, reliability=reliability[None])
    assert 0.5 < serial.mask.mean() < 0.99  # holes and surfaces both present: the comparison is not trivial
    _assert_same(serial, forward_warp_clip(*args, reliability=reliability[None], threads=threads))


def test_banded_fused_clip_and_float_images_equal_serial():
    """Fused neighbours see the same static background at exactly the same depth but in their own colours, so
    the frame order decides those ties."""
    _, depth, K = _scene()
    frames = 4
    images = np.stack([_scene(seed=10 + i)[0] for i in range(frames)])
    depths = np.repeat(depth[None], frames, axis=0)
    depths[1, 40:80, 20:60] = 0.8  # something that moves between frames: fusion fills what it hid
    depths[3, 10:50, 100:140] = 0.9
    transforms = np.stack([target_transform(OrbitTarget(yaw_deg=5.0 * (i + 1), pivot_m=1.5)) for i in range(frames)])
    fused = (images, depths, K, K, transforms, (120, 160))
    _assert_same(forward_warp_clip(*fused, fuse_frames=2), forward_warp_clip(*fused, fuse_frames=2, threads=2))
    mask = np.repeat((depths < 1.5)[..., None], 3, axis=-1).astype(np.float32)
    masked = (mask, depths, K, K, transforms, (120, 160))
    _assert_same(forward_warp_clip(*masked), forward_warp_clip(*masked, threads=3))


def test_more_threads_than_rows_and_invalid_threads():
    image, depth, K = _scene(2, 8)
    T = target_transform(OrbitTarget(yaw_deg=3.0, pivot_m=2.0))
    args = (image[None], depth[None], K, K, T, (2, 8))
    _assert_same(forward_warp_clip(*args), forward_warp_clip(*args, threads=4))
    with pytest.raises(GeometryError, match="threads"):
        forward_warp_clip(*args, threads=0)
