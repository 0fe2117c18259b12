"""The compiled depth repair against a plain NumPy statement of the same rules (the implementation it replaced), on
random depth with runs of every length, flying pixels, borders and NaN."""

import numpy as np
import pytest

from model.geometry import fill_depth_holes, repair_depth
from model.geometry.depth_repair import flying_pixels


def reference_fill(depth, max_gap_px, image):
    """Each invalid pixel: of the nearest valid pixels left/right (and above/below with colour) whose run is at most
    max_gap_px long, the one of closest colour (sum of absolute differences), on a tie the farther."""
    invalid = depth <= 0
    out = depth.copy()
    height, width = depth.shape
    for y, x in zip(*np.nonzero(invalid)):
        best_cost, best_depth = np.inf, 0.0
        for dy, dx in ((0, 1), (1, 0)) if image is not None else ((0, 1),):
            before, after = (y - dy, x - dx), (y + dy, x + dx)
            while min(before) >= 0 and invalid[before]:
                before = (before[0] - dy, before[1] - dx)
            while after[0] < height and after[1] < width and invalid[after]:
                after = (after[0] + dy, after[1] + dx)
            if (after[0] - before[0]) + (after[1] - before[1]) - 1 > max_gap_px:
                continue
            for cy, cx in (before, after):
                if not (0 <= cy < height and 0 <= cx < width):
                    continue
                cost = 0 if image is None else int(np.abs(image[y, x].astype(int) - image[cy, cx].astype(int)).sum())
                if cost < best_cost or (cost == best_cost and depth[cy, cx] > best_depth):
                    best_cost, best_depth = cost, depth[cy, cx]
        if np.isfinite(best_cost):
            out[y, x] = best_depth
    return out


def reference_flying(depth, ratio):
    padded = np.pad(np.where(depth > 0, depth, np.nan), 1, constant_values=np.nan)
    neighbours = np.stack([padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]])
    with np.errstate(invalid="ignore"):
        nearer = (neighbours < depth * np.float32(1.0 - ratio)).any(axis=0)
        farther = (neighbours > depth * np.float32(1.0 + ratio)).any(axis=0)
    return (depth > 0) & nearer & farther


def reference_reliability(guessed, filled, ratio, radius):
    height, width = filled.shape
    reliability = np.ones(filled.shape, np.float32)
    for y, x in zip(*np.nonzero(guessed)):
        window = filled[max(y - radius, 0) : y + radius + 1, max(x - radius, 0) : x + radius + 1]
        valid = window[window > 0]
        if valid.size and valid.max() > np.float32(1.0 + ratio) * valid.min():
            reliability[y, x] = 0.0
    return reliability


def random_case(seed):
    rng = np.random.default_rng(seed)
    height, width = rng.integers(1, 40, 2)
    depth = rng.choice([1.0, 1.02, 1.5, 2.0, 3.0], size=(height, width)).astype(np.float32)
    depth[rng.random((height, width)) < rng.uniform(0.0, 0.6)] = 0.0  # runs of every length, borders included
    if seed % 3 == 0:
        depth[rng.random((height, width)) < 0.05] = np.nan
    image = rng.integers(0, 3, (height, width, 3)).astype(np.uint8) * 100  # few colours: many cost ties
    return depth, image


@pytest.mark.parametrize("seed", range(40))
def test_compiled_repair_matches_the_reference(seed):
    depth, image = random_case(seed)
    clean = np.nan_to_num(depth, nan=0.0)
    gap = [1, 3, 32][seed % 3]
    np.testing.assert_array_equal(fill_depth_holes(depth, gap), reference_fill(clean, gap, None))
    np.testing.assert_array_equal(fill_depth_holes(depth, gap, image), reference_fill(clean, gap, image))
    np.testing.assert_array_equal(flying_pixels(clean, 0.05), reference_flying(clean, 0.05))
    repaired, reliability = repair_depth(depth, image, gap, 0.05, unreliable_px=1)
    kept = np.where(reference_flying(clean, 0.05), np.float32(0.0), clean)
    expected = reference_fill(kept, gap, image)
    np.testing.assert_array_equal(repaired, expected)
    np.testing.assert_array_equal(reliability, reference_reliability(kept <= 0, expected, 0.05, 2))


def test_a_clip_is_repaired_frame_by_frame():
    frames = [random_case(seed) for seed in (1, 4)]
    size = tuple(min(f[0].shape[i] for f in frames) for i in (0, 1))
    depth = np.stack([d[: size[0], : size[1]] for d, _ in frames])
    image = np.stack([i[: size[0], : size[1]] for _, i in frames])
    repaired, reliability = repair_depth(depth, image)
    for t in range(2):
        expected = repair_depth(depth[t], image[t])
        np.testing.assert_array_equal(repaired[t], expected[0])
        np.testing.assert_array_equal(reliability[t], expected[1])
