"""The forward warp against analytic cases, and the numba kernel against the torch path."""

import numpy as np
import pytest

from model.geometry import GeometryError, PinholeCamera, WarpSettings, forward_warp, forward_warp_clip

H, W = 60, 80
K = np.array([[70.0, 0.0, 39.5], [0.0, 70.0, 29.5], [0.0, 0.0, 1.0]])


def translation(x: float = 0.0, y: float = 0.0, z: float = 0.0) -> np.ndarray:
    T = np.eye(4)
    T[:3, 3] = (x, y, z)
    return T


def rotation_about_y(deg: float) -> np.ndarray:
    c, s = np.cos(np.deg2rad(deg)), np.sin(np.deg2rad(deg))
    T = np.eye(4)
    T[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    return T


def coordinate_image(height: int = H, width: int = W) -> np.ndarray:
    """float32 (H, W, 3) whose colour is the pixel's own (u, v, 1): a warp of it shows where each pixel came from."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([u, v, np.ones_like(u)], axis=-1)


def random_image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def test_identity_returns_the_input():
    image = random_image()
    depth = np.random.default_rng(1).uniform(0.5, 3.0, (H, W)).astype(np.float32)
    result = forward_warp(image, depth, K, K, np.eye(4), (H, W))
    assert result.mask.all()
    np.testing.assert_array_equal(result.image, image)
    np.testing.assert_allclose(result.depth, depth, rtol=1e-6)
    assert result.image.dtype == np.uint8 and result.depth.dtype == np.float32


@pytest.mark.parametrize("t", [(0.05, -0.03, 0.0), (0.02, 0.01, -0.6), (-0.04, 0.0, 0.5)])
def test_fronto_parallel_plane_under_translation_is_the_known_homography(t):
    # Plane z = Z, camera moved by c (T_dst_src translation t = -c): x' = f (X + tx) / (Z + tz) + cx, an affine map.
    Z = 2.0
    depth = np.full((H, W), Z, np.float32)
    result = forward_warp(coordinate_image(), depth, K, K, translation(*t), (H, W))
    tx, ty, tz = t
    scale = Z / (Z + tz)
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    # invert x = scale * (u - cx) + f * tx / (Z + tz) + cx for the source coordinate u
    u = (x - K[0, 2] - K[0, 0] * tx / (Z + tz)) / scale + K[0, 2]
    v = (y - K[1, 2] - K[1, 1] * ty / (Z + tz)) / scale + K[1, 2]
    inside = (u >= 0) & (u <= W - 1) & (v >= 0) & (v <= H - 1)
    # Every pixel whose preimage lies inside the source grid is covered: no cracks, even when magnified (tz < 0).
    assert result.mask[inside].all()
    assert not result.mask[(u < -1) | (u > W) | (v < -1) | (v > H)].any()
    np.testing.assert_allclose(result.image[..., 0][inside], u[inside], atol=1e-3)
    np.testing.assert_allclose(result.image[..., 1][inside], v[inside], atol=1e-3)
    np.testing.assert_allclose(result.depth[inside], Z + tz, rtol=1e-5)


def test_pure_rotation_does_not_depend_on_depth():
    image = random_image(2)
    flat = np.full((H, W), 1.0, np.float32)
    # depth with hard discontinuities: under a pure rotation there is no parallax, so nothing may tear open
    rough = np.random.default_rng(3).choice([0.4, 1.0, 7.0], size=(H, W)).astype(np.float32)
    T = rotation_about_y(8.0)
    a = forward_warp(image, flat, K, K, T, (H, W))
    b = forward_warp(image, rough, K, K, T, (H, W))
    assert 0.5 < a.mask.mean() < 1.0  # the rotation moves part of the view out of frame
    assert np.mean(a.mask != b.mask) < 1e-3
    both = a.mask & b.mask
    assert np.abs(a.image[both].astype(int) - b.image[both].astype(int)).max() <= 1


def two_planes(near_rows: slice) -> tuple[np.ndarray, np.ndarray]:
    """Far plane at 3 m coloured blue, a near block at 1 m coloured red in `near_rows`, columns 30-50."""
    image = np.zeros((H, W, 3), np.uint8)
    image[..., 2] = 255
    depth = np.full((H, W), 3.0, np.float32)
    image[near_rows, 30:50] = (255, 0, 0)
    image[near_rows, 30:50, 2] = 0
    depth[near_rows, 30:50] = 1.0
    return image, depth


@pytest.mark.parametrize("near_rows", [slice(10, 40), slice(25, 55)])
def test_nearest_surface_wins_whatever_the_raster_order(near_rows):
    image, depth = two_planes(near_rows)
    # Move the camera left: the near block shifts right by f * 0.2 / 1 = 14 px, the far plane by 4.7 px, so the
    # block covers far-plane pixels it did not cover in the source.
    result = forward_warp(image, depth, K, K, translation(x=0.2), (H, W))
    rows = np.arange(H)[near_rows][2:-2]
    block = result.image[rows][:, 45:62]  # source columns 31-48 moved by 14 px
    assert (block[..., 0] == 255).all() and (block[..., 2] == 0).all()
    np.testing.assert_allclose(result.depth[rows][:, 45:62], 1.0, rtol=1e-5)


def test_disocclusion_stays_a_hole_without_bleeding():
    image, depth = two_planes(slice(10, 50))
    result = forward_warp(image, depth, K, K, translation(x=0.2), (H, W))
    rows = slice(14, 46)
    # The block's left edge moves from 30 to 44 px, the far plane behind it from 30 to ~34.7 px: the strip between
    # was hidden in the source and must stay empty, never painted red or blue by stretched triangles.
    strip = result.mask[rows, 36:43]
    assert not strip.any()
    assert result.coverage[rows, 36:43].max() == 0
    # and nothing red lands left of the block's new edge
    assert (result.image[rows, :43, 0] == 0).all()


def test_points_behind_or_outside_the_target_are_dropped():
    image = random_image(4)
    depth = np.full((H, W), 1.0, np.float32)
    depth[:, : W // 2] = 3.0  # left half far, right half near
    # Step 2 m forward: the near half (1 m) is now behind the camera, the far half 1 m ahead (magnified 3x).
    result = forward_warp(image, depth, K, K, translation(z=-2.0), (H, W))
    assert result.mask.any()
    assert (result.depth[result.mask] > 0.99).all() and (result.depth[result.mask] < 1.01).all()
    # Shifted far to the side, nothing is left in view, and nothing wraps around.
    gone = forward_warp(image, depth, K, K, translation(x=50.0), (H, W))
    assert not gone.mask.any() and not gone.image.any() and not gone.depth.any()


def test_coverage_is_soft_near_holes_and_under_magnification():
    image, depth = two_planes(slice(10, 50))
    result = forward_warp(image, depth, K, K, translation(x=0.2), (H, W))
    assert result.coverage.min() >= 0 and result.coverage.max() <= 1
    assert (result.coverage[~result.mask] == 0).all()
    assert result.coverage[30, 35] < result.coverage[30, 20] == 1.0  # next to the disocclusion vs open background
    flat = np.full((H, W), 2.0, np.float32)
    magnified = forward_warp(image, flat, K, K, translation(z=-1.0), (H, W))  # 2x magnification
    assert 0.4 < magnified.coverage[30, 40] < 0.6


def test_output_resolution_follows_the_target_camera():
    image = coordinate_image()
    depth = np.full((H, W), 2.0, np.float32)
    K_big = PinholeCamera(K, W, H).scaled(2 * W, 2 * H).K
    result = forward_warp(image, depth, K, K_big, np.eye(4), (2 * H, 2 * W))
    assert result.image.shape == (2 * H, 2 * W, 3)
    # pixel centres at integer coordinates: output pixel x samples source u = (x + 0.5) / 2 - 0.5
    inner = result.mask[2:-2, 2:-2]
    assert inner.all()
    np.testing.assert_allclose(result.image[10, 2:-2, 0], (np.arange(2, 2 * W - 2) + 0.5) / 2 - 0.5, atol=1e-4)


def test_skewed_intrinsics_are_refused():
    skewed = K.copy()
    skewed[0, 1] = 0.5
    with pytest.raises(GeometryError, match="skew"):
        forward_warp(random_image(), np.ones((H, W), np.float32), skewed, K, np.eye(4), (H, W))


def test_torch_path_matches_the_cpu_kernel():
    pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (3, H, W, 3), dtype=np.uint8)
    depths = np.stack([two_planes(slice(10 + 5 * i, 40 + 5 * i))[1] for i in range(3)])
    depths[1, :5, :5] = 0.0
    depths[2, 20:25, 60:70] = np.nan
    T = np.stack([translation(0.1, 0.02, -0.3), rotation_about_y(5.0) @ translation(x=-0.1), translation(z=0.4)])
    K_dst = PinholeCamera(K, W, H).scaled(100, 70).K
    unbounded = WarpSettings(unseen_depth_ratio=float("inf"))
    for settings, fuse in (
        (WarpSettings(), 0),
        (WarpSettings(), 1),
        (unbounded, 0),
        (WarpSettings(occlude_unseen=False), 0),
    ):
        cpu = forward_warp_clip(images, depths, K, K_dst, T, (70, 100), fuse_frames=fuse, settings=settings)
        gpu = forward_warp_clip(
            images, depths, K, K_dst, T, (70, 100), fuse_frames=fuse, settings=settings, backend="torch"
        )
        assert cpu.mask.mean() > 0.5
        np.testing.assert_array_equal(cpu.mask, gpu.mask)
        assert np.abs(cpu.image.astype(int) - gpu.image.astype(int)).max() <= 1
        np.testing.assert_allclose(cpu.depth, gpu.depth, rtol=1e-6)
        np.testing.assert_allclose(cpu.coverage, gpu.coverage, atol=1e-6)


@pytest.mark.parametrize("unseen_depth_ratio", [float("inf"), 0.1])
def test_surfaces_behind_space_the_source_never_saw_are_not_trusted(unseen_depth_ratio):
    # A post 6 px wide at 1 m in front of a wall at 3 m. Orbiting 25 deg right around it, the target looks through
    # the space behind the post's face that the source never saw (the post may be as deep as unseen_depth_ratio
    # allows) at wall the source did see beside the post: those wall pixels must stay holes, while wall pixels seen
    # past that space stay covered.
    image, depth = two_planes(slice(10, 50))
    depth[10:50, 30:37] = 3.0
    depth[10:50, 43:50] = 3.0
    image[depth == 3.0] = (0, 0, 255)
    pivot = np.array([0.0, 0.0, 1.0])
    R_src_dst = rotation_about_y(-25.0)[:3, :3]
    T_src_dst = np.eye(4)
    T_src_dst[:3, :3] = R_src_dst
    T_src_dst[:3, 3] = pivot - R_src_dst @ pivot
    T_dst_src = np.linalg.inv(T_src_dst)
    result = forward_warp(
        image, depth, K, K, T_dst_src, (H, W), settings=WarpSettings(unseen_depth_ratio=unseen_depth_ratio)
    )
    deepest = min(1.0 * (1.0 + unseen_depth_ratio), 2.9)

    # Which target rays cross the shadow volume (behind the box face, as seen from the source) before the wall?
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    rays = R_src_dst @ np.stack([(x - K[0, 2]) / K[0, 0], (y - K[1, 2]) / K[1, 1], np.ones_like(x)]).reshape(3, -1)
    centre = T_src_dst[:3, 3][:, None]
    to_wall = (3.0 - centre[2]) / rays[2]  # ray length (in units of the ray vector) where it meets the wall z = 3
    through_shadow = np.zeros(H * W, bool)
    for fraction in np.linspace(0.05, 0.98, 60):
        points = centre + rays * to_wall * fraction
        u = K[0, 0] * points[0] / points[2] + K[0, 2]
        v = K[1, 1] * points[1] / points[2] + K[1, 2]
        in_box = (u > 37) & (u < 42) & (v > 11) & (v < 48) & (points[2] > 1.05) & (points[2] < deepest)
        through_shadow |= in_box
    through_shadow = through_shadow.reshape(H, W)
    wall = result.mask & (result.depth > 1.5)
    assert through_shadow.sum() > 50
    assert (wall & through_shadow).sum() <= 0.05 * through_shadow.sum()
    # without that caution the warp shows the wall there
    trusting = forward_warp(image, depth, K, K, T_dst_src, (H, W), settings=WarpSettings(occlude_unseen=False))
    assert (trusting.mask & (trusting.depth > 1.5) & through_shadow).sum() > 0.3 * through_shadow.sum()
    # the rest of the wall that the source saw stays covered
    open_wall = ~through_shadow & (result.image[..., 2] == 255)
    assert wall[open_wall].mean() > 0.97 and open_wall.sum() > 0.2 * H * W
