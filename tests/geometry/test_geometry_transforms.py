"""Intrinsics, rigid transforms and target viewpoints (docs/DESIGN.md conventions and contract 2)."""

import math

import numpy as np
import pytest

from model.geometry import (
    GeometryError,
    OrbitTarget,
    PinholeCamera,
    PoseTarget,
    ViewpointSampler,
    centre_depth,
    check_rigid,
    invert_transform,
    matrix_to_pose,
    pose_to_matrix,
    target_transform,
)

K = np.array([[500.0, 0.0, 319.5], [0.0, 480.0, 239.5], [0.0, 0.0, 1.0]])


def random_pose(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    return np.concatenate([rng.normal(size=3), q / np.linalg.norm(q)])


def camera_centre_in_source(T_dst_src: np.ndarray) -> np.ndarray:
    """Position of the virtual camera in the source optical frame."""
    return invert_transform(T_dst_src)[:3, 3]


def test_scaled_intrinsics_map_image_corners_and_centre():
    camera = PinholeCamera(K, 640, 480)
    half = camera.scaled(320, 240)
    assert half.fx == pytest.approx(250.0) and half.fy == pytest.approx(240.0)
    # the image centre (319.5, 239.5) at 640x480 is (159.5, 119.5) at 320x240; the outer pixel edge -0.5 stays -0.5
    assert half.cx == pytest.approx(159.5) and half.cy == pytest.approx(119.5)
    point = np.array([0.3, -0.2, 2.0])
    uv_full = (camera.K @ point)[:2] / point[2]
    uv_half = (half.K @ point)[:2] / point[2]
    np.testing.assert_allclose(uv_half, (uv_full + 0.5) * 0.5 - 0.5)


@pytest.mark.parametrize(
    "bad_K",
    [np.eye(3) * np.nan, np.diag([0.0, 500.0, 1.0]), np.zeros((3, 3)), np.eye(2)],
    ids=["nan", "zero-focal", "zeros", "wrong-shape"],
)
def test_bad_intrinsics_raise(bad_K):
    with pytest.raises(GeometryError):
        PinholeCamera(bad_K, 640, 480)


def test_pose_matrix_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(50):
        pose = random_pose(rng)
        back = matrix_to_pose(pose_to_matrix(pose))
        # q and -q are the same rotation; matrix_to_pose returns qw >= 0
        sign = 1.0 if pose[6] >= 0 else -1.0
        np.testing.assert_allclose(back[:3], pose[:3], atol=1e-12)
        np.testing.assert_allclose(back[3:], sign * pose[3:], atol=1e-9)


def test_pose_to_matrix_known_rotation():
    # 90 degrees about z: x axis goes to y
    T = pose_to_matrix([1.0, 2.0, 3.0, 0.0, 0.0, math.sin(math.pi / 4), math.cos(math.pi / 4)])
    np.testing.assert_allclose(T @ [1.0, 0.0, 0.0, 1.0], [1.0, 3.0, 3.0, 1.0], atol=1e-12)


def test_invert_transform():
    T = pose_to_matrix(random_pose(np.random.default_rng(1)))
    np.testing.assert_allclose(invert_transform(T) @ T, np.eye(4), atol=1e-12)


@pytest.mark.parametrize(
    "T",
    [np.diag([2.0, 1.0, 1.0, 1.0]), np.diag([-1.0, 1.0, 1.0, 1.0]), np.eye(3), np.full((4, 4), np.inf)],
    ids=["scaled", "reflection", "3x3", "inf"],
)
def test_non_rigid_transforms_raise(T):
    with pytest.raises(GeometryError):
        check_rigid(T, "T_dst_src")


def test_pose_target_is_inverse_of_pose():
    pose = random_pose(np.random.default_rng(2))
    np.testing.assert_allclose(target_transform(PoseTarget(pose)) @ pose_to_matrix(pose), np.eye(4), atol=1e-12)


def test_orbit_yaw_right_moves_camera_right_and_keeps_pivot_centred():
    T = target_transform(OrbitTarget(yaw_deg=20.0, pivot_m=2.0))
    centre = camera_centre_in_source(T)
    assert centre[0] > 0.1 and abs(centre[1]) < 1e-12
    # the camera stays on the circle around the pivot and still looks at it
    assert np.linalg.norm(centre - [0.0, 0.0, 2.0]) == pytest.approx(2.0)
    pivot_in_dst = T @ [0.0, 0.0, 2.0, 1.0]
    np.testing.assert_allclose(pivot_in_dst[:3], [0.0, 0.0, 2.0], atol=1e-12)


def test_orbit_pitch_up_moves_camera_up():
    T = target_transform(OrbitTarget(pitch_deg=15.0, pivot_m=1.5))
    centre = camera_centre_in_source(T)
    assert centre[1] < -0.1  # optical y points down
    np.testing.assert_allclose((T @ [0.0, 0.0, 1.5, 1.0])[:3], [0.0, 0.0, 1.5], atol=1e-12)


def test_orbit_forward_moves_along_optical_axis():
    T = target_transform(OrbitTarget(forward_m=0.3))
    np.testing.assert_allclose(camera_centre_in_source(T), [0.0, 0.0, 0.3], atol=1e-12)


def test_orbit_pivot_from_centre_depth():
    depth = np.full((48, 64), 3.0, np.float32)
    depth[:5] = 0.5  # outside the centre window: ignored
    K_small = PinholeCamera(K, 640, 480).scaled(64, 48).K
    assert centre_depth(depth, K_small) == pytest.approx(3.0)
    with_pivot = target_transform(OrbitTarget(yaw_deg=10.0, pivot_m=3.0))
    from_depth = target_transform(OrbitTarget(yaw_deg=10.0), depth=depth, K=K_small)
    np.testing.assert_allclose(from_depth, with_pivot, atol=1e-9)


def test_orbit_without_pivot_or_depth_explains_what_to_pass():
    with pytest.raises(GeometryError, match="pivot_m"):
        target_transform(OrbitTarget(yaw_deg=10.0))
    with pytest.raises(GeometryError, match="pivot_m"):
        target_transform(OrbitTarget(yaw_deg=10.0), depth=np.zeros((48, 64), np.float32), K=K)


def test_viewpoint_sampler_covers_six_directions_within_ranges():
    sampler = ViewpointSampler(yaw_range_deg=(10.0, 20.0), pitch_range_deg=(5.0, 8.0), translation_range_m=(0.1, 0.2))
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(300):
        target = sampler.sample(rng)
        nonzero = [
            (name, value)
            for name, value in (("yaw", target.yaw_deg), ("pitch", target.pitch_deg), ("forward", target.forward_m))
            if value != 0.0
        ]
        assert len(nonzero) == 1, target  # exactly one direction per sample
        name, value = nonzero[0]
        low, high = {"yaw": (10.0, 20.0), "pitch": (5.0, 8.0), "forward": (0.1, 0.2)}[name]
        assert low <= abs(value) <= high
        seen.add((name, value > 0))
    assert len(seen) == 6


def test_viewpoint_sampler_rejects_bad_ranges():
    with pytest.raises(GeometryError):
        ViewpointSampler(yaw_range_deg=(30.0, 10.0))
    with pytest.raises(GeometryError):
        ViewpointSampler(directions=("sideways",))


def test_pinhole_cameras_compare_by_value():
    assert PinholeCamera(K, 640, 480) == PinholeCamera(K.copy(), 640, 480)
    assert PinholeCamera(K, 640, 480) != PinholeCamera(K, 320, 240)
    assert PinholeCamera(K, 640, 480).scaled(320, 240) == PinholeCamera(K, 640, 480).scaled(320, 240)
