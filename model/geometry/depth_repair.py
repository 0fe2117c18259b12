"""Sensor depth made fit for the warp: flying-pixel removal, colour-guided hole filling and a per-pixel reliability.

Real depth cameras (RealSense D4xx, see `model.depth_sensor`) lose depth in bands along depth edges and in the
infrared shadow beside near objects, and report mixed ("flying") depths between the two surfaces. Warped as they
are, those pixels put foreground colour on the background ("ghosts"). Here:

1. flying pixels (a nearer AND a farther 4-neighbour, both beyond `max_depth_ratio`) become invalid;
2. each invalid pixel takes the depth of the nearest valid pixel left, right, above or below whose colour is most
   like its own: the filled depth edge follows the colour edge (the colour of band and shadow pixels is observed;
   only their depth is missing). Without colour the farther of the left and right neighbours is taken, which is
   right in a stereo shadow (librealsense's hole-filling filter "farthest from around");
3. reliability (H, W) float32 is 0 on filled pixels next to a depth edge (where the guess decides which surface a
   pixel belongs to) and 1 elsewhere; the warp drops unreliable pixels from its mask and coverage, so engines repair
   them instead of copying them.

Clean depth (nothing invalid, no flying pixels) passes through unchanged with reliability 1 everywhere.
"""

from __future__ import annotations

import cv2
import numpy as np

from model.geometry.base import GeometryError


def validate_depth(depth: np.ndarray, name: str = "depth") -> np.ndarray:
    """float32 depth with NaN/inf mapped to 0 (invalid); raises GeometryError on negative values or no valid pixel.

    Returns the input itself (no copy) when it is already float32 and finite, which is the common case at camera rate.
    """
    depth = np.asarray(depth)
    if not np.issubdtype(depth.dtype, np.number):
        raise GeometryError(f"{name} must be numeric (metres), got dtype {depth.dtype}")
    depth = depth.astype(np.float32, copy=False)
    if (depth < 0).any():  # NaN compares False, so only real negatives count
        raise GeometryError(
            f"{name} has negative values (min {np.nanmin(depth):.3f} m); depth must be metres >= 0 with 0/NaN/inf "
            "marking missing measurements"
        )
    if not np.isfinite(depth).all():
        depth = np.where(np.isfinite(depth), depth, np.float32(0.0))
    if not (depth > 0).any():
        raise GeometryError(f"{name} has no valid pixel (all 0, NaN or inf); check the depth topic / units")
    return depth


def _nearest_valid(invalid: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Index along `axis` of the nearest valid pixel before (-1 if none) and after (size if none) every pixel."""
    size = invalid.shape[axis]
    index = np.arange(size, dtype=np.int32).reshape((-1, 1) if axis == 0 else (1, -1))
    before = np.maximum.accumulate(np.where(invalid, np.int32(-1), index), axis=axis)
    after = np.flip(np.minimum.accumulate(np.flip(np.where(invalid, np.int32(size), index), axis), axis=axis), axis)
    return before, after


def fill_depth_holes(depth: np.ndarray, max_gap_px: int = 32, image: np.ndarray | None = None) -> np.ndarray:
    """Fill short runs of invalid depth from their valid neighbours.

    With `image`, every invalid pixel takes the depth of whichever nearest valid pixel along its row or column
    (left, right, above, below; runs up to `max_gap_px`) has the colour closest to its own (sum of absolute RGB
    differences; on a tie the farther depth). Without it, horizontal runs take the farther of their two ends (the
    stereo-shadow rule). Runs longer than `max_gap_px` stay invalid; runs touching the border take their one end.

    Args:
        depth: (H, W) metres, 0 (or NaN/inf) invalid; negative values raise GeometryError (see `validate_depth`).
        max_gap_px: longest run to fill; 0 disables.
        image: optional (H, W, 3) colour aligned with the depth.
    Returns:
        (H, W) float32; the validated input itself when there is nothing to fill, else a new array.
    """
    depth = validate_depth(depth)
    invalid = depth <= 0
    if max_gap_px <= 0 or not invalid.any():
        return depth
    if image is not None and np.shape(image)[:2] != depth.shape:
        raise GeometryError(f"image {np.shape(image)} must match depth {depth.shape} (align depth to colour first)")
    # only the invalid pixels are looked at: a few percent of a camera frame
    rows, cols = np.nonzero(invalid)
    best_depth = np.zeros(rows.size, np.float32)
    best_cost = np.full(rows.size, np.inf, np.float32)
    own = None if image is None else np.asarray(image)[rows, cols].astype(np.int32)
    for axis in (1,) if image is None else (1, 0):
        before, after = _nearest_valid(invalid, axis)
        size = invalid.shape[axis]
        before, after = before[rows, cols], after[rows, cols]
        short = np.minimum(after, size) - np.maximum(before, -1) - 1 <= max_gap_px
        for index, exists in ((before, before >= 0), (after, after < size)):
            index = index.clip(0, size - 1)
            at = (rows, index) if axis == 1 else (index, cols)
            candidate = depth[at]
            if own is None or image is None:  # no colour: every short run costs the same
                cost = np.zeros(rows.size, np.float32)
            else:
                cost = np.abs(image[at].astype(np.int32) - own).sum(-1)
            cost = np.where(short & exists, cost, np.inf).astype(np.float32)
            better = (cost < best_cost) | ((cost == best_cost) & (candidate > best_depth))
            best_cost = np.where(better, cost, best_cost)
            best_depth = np.where(better, candidate, best_depth)
    filled = np.isfinite(best_cost)
    depth = depth.copy()
    depth[rows[filled], cols[filled]] = best_depth[filled]
    return depth


def _neighbours(depth: np.ndarray) -> np.ndarray:
    """(4, H, W) depths of the 4-neighbours, NaN outside the image or where invalid."""
    padded = np.pad(np.where(depth > 0, depth, np.nan), 1, constant_values=np.nan)
    return np.stack([padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]])


def flying_pixels(depth: np.ndarray, max_depth_ratio: float) -> np.ndarray:
    """(H, W) bool: valid pixels with one 4-neighbour nearer and one farther by more than `max_depth_ratio`
    (relative): a measurement between two surfaces, which belongs to neither."""
    neighbours = _neighbours(depth)
    with np.errstate(invalid="ignore"):
        nearer = (neighbours < depth * (1.0 - max_depth_ratio)).any(axis=0)
        farther = (neighbours > depth * (1.0 + max_depth_ratio)).any(axis=0)
    return (depth > 0) & nearer & farther


def near_depth_step(depth: np.ndarray, max_depth_ratio: float, radius_px: int) -> np.ndarray:
    """(H, W) bool: pixels whose (2 radius + 1)^2 window of valid depths spans more than `max_depth_ratio`
    (max > (1 + ratio) min): within `radius_px` of a depth step."""
    kernel = np.ones((2 * radius_px + 1, 2 * radius_px + 1), np.uint8)
    valid = depth > 0
    nearest = cv2.erode(np.where(valid, depth, np.float32(np.inf)), kernel, borderType=cv2.BORDER_REPLICATE)
    farthest = cv2.dilate(np.where(valid, depth, np.float32(0.0)), kernel, borderType=cv2.BORDER_REPLICATE)
    return farthest > (1.0 + max_depth_ratio) * nearest


def repair_depth(
    depth: np.ndarray,
    image: np.ndarray | None = None,
    max_gap_px: int = 32,
    max_depth_ratio: float = 0.05,
    unreliable_px: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Steps 1-3 of the module docstring on one frame.

    Args:
        depth: (H, W) metres, 0/NaN/inf invalid. image: (H, W, 3) aligned colour, or None (farther-side filling).
        max_gap_px: longest invalid run to fill (0: no filling, no flying-pixel removal, reliability 1).
        max_depth_ratio: relative depth step that counts as an edge (the warp's `WarpSettings.max_depth_ratio`).
        unreliable_px: a filled pixel within this many pixels of a depth edge (a pixel beside a step) is unreliable.
    Returns:
        depth (H, W) float32 and reliability (H, W) float32 in {0, 1}.
    """
    depth = validate_depth(depth)
    if max_gap_px <= 0:
        return depth, np.ones(depth.shape, np.float32)
    flying = flying_pixels(depth, max_depth_ratio)
    if flying.any():
        depth = np.where(flying, np.float32(0.0), depth)
    guessed = depth <= 0
    if not guessed.any():
        return depth, np.ones(depth.shape, np.float32)
    depth = fill_depth_holes(depth, max_gap_px, image)
    return depth, (~(guessed & near_depth_step(depth, max_depth_ratio, unreliable_px + 1))).astype(np.float32)
