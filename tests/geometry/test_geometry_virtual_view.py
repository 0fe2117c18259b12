"""Hole filling, the warp engine and the virtual-view glue."""

import numpy as np
import pytest

from model.engines import EngineError, GenerationRequest, create_engine
from model.geometry import GeometryError, OrbitTarget, PoseTarget, invert_transform, target_transform
from model.inpaint import InpaintError, fill_holes
from model.virtual_view import prepare_virtual_view, render_virtual_view

K = np.array([[120.0, 0.0, 39.5], [0.0, 120.0, 29.5], [0.0, 0.0, 1.0]])


def smooth_image(height: int = 60, width: int = 80) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 3, y * 4, (x + y) * 2], axis=-1).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("method", ["pushpull", "telea"])
def test_fill_holes_keeps_valid_pixels_and_fills_smoothly(method):
    image = smooth_image()
    mask = np.ones(image.shape[:2], bool)
    mask[20:30, 30:45] = False
    damaged = image.copy()
    damaged[~mask] = 0
    filled = fill_holes(damaged, mask, method=method)
    np.testing.assert_array_equal(filled[mask], image[mask])
    # a smooth ramp must come back close, far from the black the holes held
    assert np.abs(filled[~mask].astype(int) - image[~mask]).mean() < 12


def test_pushpull_with_depth_fills_disocclusion_from_background():
    image = np.zeros((60, 80, 3), np.uint8)
    image[:, :40] = (250, 0, 0)  # near foreground on the left
    image[:, 50:] = (0, 0, 250)  # far background on the right
    depth = np.where(np.arange(80) < 40, 1.0, 3.0).astype(np.float32) * np.ones((60, 1), np.float32)
    mask = np.ones((60, 80), bool)
    mask[:, 40:50] = False  # the gap a warp opens between them
    filled = fill_holes(image, mask, depth=depth)
    gap = filled[:, 40:50].astype(int)
    assert gap[..., 2].mean() > 2 * gap[..., 0].mean()


def test_fill_holes_errors():
    with pytest.raises(InpaintError, match="method"):
        fill_holes(smooth_image(), np.ones((60, 80), bool), method="magic")
    with pytest.raises(InpaintError, match="mask"):
        fill_holes(smooth_image(), np.ones((60, 81), bool))


def test_warp_engine_returns_filled_frames_of_request_shape():
    rng = np.random.default_rng(0)
    warped = rng.integers(0, 255, (2, 30, 40, 3), dtype=np.uint8)
    mask = rng.random((2, 30, 40)) > 0.2
    request = GenerationRequest(
        source_rgb=warped.copy(), warped_rgb=warped, warp_mask=mask, coverage=mask.astype(np.float32)
    )
    frames = create_engine("warp").generate(request)
    assert frames.shape == (2, 30, 40, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames[mask], warped[mask])
    with pytest.raises(EngineError, match="inpaint"):
        create_engine("warp", inpaint="magic")


def scene(num_frames: int = 2):
    rgb = np.repeat(smooth_image()[None], num_frames, axis=0)
    depth = np.full((num_frames, 60, 80), 2.0, np.float32)
    depth[:, 20:40, 30:50] = 1.5  # a box in front
    return rgb, depth


def test_prepare_virtual_view_shapes_defaults_and_interaction():
    rgb, depth = scene()
    interaction = np.zeros(depth.shape, np.float32)
    interaction[:, 20:40, 30:50] = 1.0
    view = prepare_virtual_view(
        rgb, depth, K, OrbitTarget(yaw_deg=8.0), out_hw=(30, 40), source_interaction=interaction
    )
    assert view.request.warped_rgb.shape == (2, 30, 40, 3)
    np.testing.assert_allclose(view.K_dst, [[60.0, 0.0, 19.5], [0.0, 60.0, 14.5], [0.0, 0.0, 1.0]])
    # one pivot for the clip: the median centre depth, the box at 1.5 m
    np.testing.assert_allclose(view.T_dst_src[0], target_transform(OrbitTarget(yaw_deg=8.0, pivot_m=1.5)))
    target = view.request.target_interaction
    assert target.shape == (2, 30, 40) and 0.0 <= target.min() and target.max() <= 1.0
    # the box is interaction region in the target too, and the background is not
    box_in_target = view.warp.depth < 1.8
    assert target[box_in_target & view.warp.mask].mean() > 0.9
    assert target[~box_in_target & view.warp.mask].mean() < 0.1


def test_identity_view_reproduces_source_through_engine():
    rgb, depth = scene(1)
    frames, view = render_virtual_view(create_engine("warp"), rgb[0], depth[0], K, PoseTarget())
    np.testing.assert_array_equal(frames[0], rgb[0])
    assert view.warp.mask.all()


def test_pose_target_equals_explicit_transform():
    rgb, depth = scene(1)
    pose = [0.05, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    by_pose = prepare_virtual_view(rgb, depth, K, PoseTarget(pose))
    T = invert_transform(np.array([[1, 0, 0, 0.05], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]]))
    by_matrix = prepare_virtual_view(rgb, depth, K, T)
    np.testing.assert_array_equal(by_pose.warp.image, by_matrix.warp.image)


def test_prepare_virtual_view_errors():
    rgb, depth = scene()
    with pytest.raises(GeometryError, match="match"):
        prepare_virtual_view(rgb, depth[:, :-1], K, PoseTarget())
    with pytest.raises(GeometryError, match="target"):
        prepare_virtual_view(rgb, depth, K, np.eye(3))
    with pytest.raises(GeometryError, match="needs depth"):
        prepare_virtual_view(rgb, None, K, PoseTarget())
