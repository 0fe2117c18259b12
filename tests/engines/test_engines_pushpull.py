"""The warp engine's push-pull hole filling (model.inpaint) against a plain numpy statement of the same algorithm.

The compiled fill builds its first pyramid level, the pixel weights and the pull in numba kernels; the reference
below spells each step out in numpy (only the pyramid's 5x5 filters are OpenCV's, as in the fill), so a kernel that
weighs, averages, blends or samples differently shows up as a different image.
"""

import cv2
import numpy as np
import pytest

from model.engines import GenerationRequest, create_engine
from model.inpaint import fill_holes

BACKGROUND_BIAS = 4  # a valid pixel weighs (depth / farthest valid depth) ** 4 ...
NO_DEPTH_WEIGHT = 1e-3  # ... or this without a finite positive depth (1 when no valid pixel has one)
PULL_GAIN = 16.0  # a pyramid pixel keeps its own colour with alpha = min(1, gain * coverage)


def reference_weights(mask: np.ndarray, depth: np.ndarray | None) -> np.ndarray:
    if depth is None:
        return mask.astype(np.float64)
    has_depth = mask & np.isfinite(depth) & (depth > 0)
    if not has_depth.any():
        return mask.astype(np.float64)
    ratio = np.where(has_depth, depth, 0.0) / depth[has_depth].max()
    return np.where(has_depth, ratio**BACKGROUND_BIAS, mask * NO_DEPTH_WEIGHT)


def block_means(values: np.ndarray) -> np.ndarray:
    """(H, W, C) -> (ceil(H/2), ceil(W/2), C): the mean of each 2x2 block over the pixels it has."""
    height, width = values.shape[:2]
    sums = np.zeros(((height + 1) // 2, (width + 1) // 2, values.shape[2]))
    counts = np.zeros(sums.shape[:2] + (1,))
    for dy in (0, 1):
        for dx in (0, 1):
            part = values[dy::2, dx::2]
            sums[: part.shape[0], : part.shape[1]] += part
            counts[: part.shape[0], : part.shape[1]] += 1
    return sums / counts


def bilinear_upsample(half: np.ndarray, height: int, width: int) -> np.ndarray:
    """Sample half-resolution `half` at full-resolution pixel centres: pixel x sits at (x - 0.5) / 2, clamped."""
    half_h, half_w = half.shape[:2]
    fy = np.clip((np.arange(height) - 0.5) / 2, 0, half_h - 1)
    fx = np.clip((np.arange(width) - 0.5) / 2, 0, half_w - 1)
    y0, x0 = fy.astype(int), fx.astype(int)
    y1, x1 = np.minimum(y0 + 1, half_h - 1), np.minimum(x0 + 1, half_w - 1)
    wy, wx = (fy - y0)[:, None, None], (fx - x0)[None, :, None]
    top = half[y0][:, x0] * (1 - wx) + half[y0][:, x1] * wx
    bottom = half[y1][:, x0] * (1 - wx) + half[y1][:, x1] * wx
    return top * (1 - wy) + bottom * wy


def reference_push_pull(image: np.ndarray, mask: np.ndarray, depth: np.ndarray | None) -> np.ndarray:
    weights = reference_weights(mask, depth)[..., None]
    # push: level 1 from full resolution, then OpenCV's pyramid down to one row or column
    levels = [block_means(np.concatenate([image * weights, weights], axis=2)).astype(np.float32)]
    while min(levels[-1].shape[:2]) > 1:
        levels.append(cv2.pyrDown(levels[-1]))
    # pull: each level's own normalised colour, blended by its coverage over the upsampled coarser estimate
    top = levels[-1].astype(np.float64)
    filled = top[..., :3] / np.maximum(top[..., 3:], 1e-12)
    for level in reversed(levels[:-1]):
        upsampled = cv2.pyrUp(filled.astype(np.float32), dstsize=(level.shape[1], level.shape[0]))
        upsampled = upsampled.reshape(level.shape[:2] + (3,)).astype(np.float64)
        coverage = level[..., 3:].astype(np.float64)
        own = level[..., :3] / np.where(coverage > 0, coverage, 1.0)
        alpha = np.where(coverage > 0, np.minimum(coverage * PULL_GAIN, 1.0), 0.0)
        filled = upsampled + alpha * (own - upsampled)
    # holes sampled bilinearly from the filled half-resolution level, valid pixels kept
    sampled = np.clip(np.floor(bilinear_upsample(filled, *mask.shape) + 0.5), 0, 255).astype(np.uint8)
    return np.where(mask[..., None], image, sampled)


def scene(height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A textured image, holes as a warp leaves them (a wide disocclusion, cracks, scattered pixels) and a depth
    with a near box, missing readings (0, NaN, inf) and negative garbage."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 255 // width, y * 255 // height, (x * y) % 256], axis=-1).astype(np.uint8)
    image = (image + rng.integers(0, 40, image.shape)).clip(0, 255).astype(np.uint8)
    mask = rng.random((height, width)) > 0.05
    mask[height // 4 : height // 2, width // 3 : width // 3 + max(1, width // 6)] = False
    mask[:, width // 2] = False
    depth = np.where((abs(x - width / 2) < width / 5) & (abs(y - height / 2) < height / 4), 1.0, 3.0)
    depth = (depth + rng.normal(0, 0.05, depth.shape)).astype(np.float32)
    for value, share in ((0.0, 0.05), (np.nan, 0.05), (np.inf, 0.01), (-1.0, 0.01)):
        depth[rng.random(depth.shape) < share] = value
    return image, mask, depth


def assert_matches_reference(image: np.ndarray, mask: np.ndarray, depth: np.ndarray | None) -> None:
    filled = fill_holes(image, mask, depth=depth)
    expected = reference_push_pull(image, mask, depth)
    np.testing.assert_array_equal(filled[mask], image[mask])
    # float32 against float64 rounding may tip a value at .5 the other way, nothing more
    difference = np.abs(filled.astype(int) - expected)
    assert difference.max() <= 1, f"{(difference > 1).sum()} pixels differ by up to {difference.max()}"
    assert (difference > 0).mean() < 1e-3


@pytest.mark.parametrize("size", [(48, 64), (37, 53), (1, 9), (9, 1), (2, 3)])
@pytest.mark.parametrize("with_depth", [True, False])
def test_pushpull_matches_numpy_reference(size, with_depth):
    image, mask, depth = scene(*size, seed=size[0] * 100 + size[1])
    mask.flat[0], mask.flat[-1] = True, False  # at least one valid pixel and one hole on every size
    assert_matches_reference(image, mask, depth if with_depth else None)


def test_pushpull_matches_reference_at_camera_resolution():
    assert_matches_reference(*scene(480, 640, seed=7))


@pytest.mark.parametrize("case", ["no valid depth anywhere", "one valid pixel", "depth only under holes"])
def test_pushpull_weight_rule_edge_cases(case):
    image, mask, depth = scene(40, 50, seed=3)
    if case == "no valid depth anywhere":  # every valid pixel then weighs 1
        depth[:] = np.nan
    elif case == "one valid pixel":
        mask[:] = False
        mask[7, 9] = True
    else:  # the farthest depth must come from valid pixels only
        depth[mask] = np.nan
        depth[~mask] = 50.0
    assert_matches_reference(image, mask, depth)


def test_pushpull_depth_changes_the_fill_towards_the_background():
    """The weights matter: with depth the gap between a near and a far surface fills from the far one."""
    image = np.zeros((60, 80, 3), np.uint8)
    image[:, :40] = (250, 0, 0)  # near foreground
    image[:, 50:] = (0, 0, 250)  # far background
    depth = np.where(np.arange(80) < 40, 1.0, 3.0).astype(np.float32) * np.ones((60, 1), np.float32)
    mask = np.ones((60, 80), bool)
    mask[:, 40:50] = False
    with_depth = fill_holes(image, mask, depth=depth)[:, 40:50].astype(int)
    without = fill_holes(image, mask)[:, 40:50].astype(int)
    assert with_depth[..., 2].mean() > without[..., 2].mean() + 30


def test_warp_engine_fills_each_frame_with_its_depth():
    image, mask, depth = scene(30, 40, seed=5)
    images = np.stack([image, image[::-1].copy()])
    masks, depths = np.stack([mask, mask[::-1]]), np.stack([depth, depth[::-1]])
    request = GenerationRequest(
        source_rgb=images, warped_rgb=images, warp_mask=masks, coverage=masks.astype(np.float32), warped_depth=depths
    )
    frames = create_engine("warp").generate(request)
    for frame, image, mask, depth in zip(frames, images, masks, depths):
        assert np.abs(frame.astype(int) - reference_push_pull(image, mask, depth)).max() <= 1
