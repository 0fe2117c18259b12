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


def _nearest_valid_along_rows(invalid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column of the nearest valid pixel to the left (-1 if none) and to the right (W if none) of every pixel."""
    width = invalid.shape[1]
    columns = np.arange(width)[None]
    left = np.maximum.accumulate(np.where(invalid, -1, columns), axis=1)
    right = np.minimum.accumulate(np.where(invalid, width, columns)[:, ::-1], axis=1)[:, ::-1]
    return left, right


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
    best_depth = np.zeros(depth.shape, np.float32)
    best_cost = np.full(depth.shape, np.inf, np.float32)
    colour = None if image is None else np.asarray(image, dtype=np.float32)
    for transpose in ((False,) if image is None else (False, True)):
        holes = invalid.T if transpose else invalid
        values = depth.T if transpose else depth
        pixels = None if colour is None else (colour.transpose(1, 0, 2) if transpose else colour)
        rows = np.arange(holes.shape[0])[:, None]
        width = holes.shape[1]
        left, right = _nearest_valid_along_rows(holes)
        short = holes & (np.minimum(right, width) - np.maximum(left, -1) - 1 <= max_gap_px)
        for index, exists in ((left, left >= 0), (right, right < width)):
            index = index.clip(0, width - 1)
            candidate = values[rows, index]
            cost = np.zeros(holes.shape, np.float32) if pixels is None else np.abs(pixels[rows, index] - pixels).sum(-1)
            cost = np.where(short & exists, cost, np.inf)
            if transpose:
                cost, candidate = cost.T, candidate.T
            better = (cost < best_cost) | ((cost == best_cost) & (candidate > best_depth))
            best_cost = np.where(better, cost, best_cost)
            best_depth = np.where(better, candidate, best_depth)
    filled = invalid & np.isfinite(best_cost)
    depth = depth.copy()
    depth[filled] = best_depth[filled]
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


def depth_edge_pixels(depth: np.ndarray, max_depth_ratio: float) -> np.ndarray:
    """(H, W) bool: pixels with a valid 4-neighbour whose depth differs by more than `max_depth_ratio` (relative)."""
    neighbours = _neighbours(depth)
    with np.errstate(invalid="ignore"):
        jump = np.abs(neighbours - depth) > max_depth_ratio * np.fmin(neighbours, depth)
    return (depth > 0) & jump.any(axis=0)


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Chessboard dilation of a bool (H, W) mask by `radius` pixels, with slices (no OpenCV needed here)."""
    out = mask.copy()
    for _ in range(radius):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= grown[:, :-1].copy()
        grown[:, :-1] |= grown[:, 1:].copy()
        out = grown
    return out


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
        unreliable_px: a filled pixel within this many pixels of a depth edge is unreliable.
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
    edges = _dilate(depth_edge_pixels(depth, max_depth_ratio), unreliable_px)
    return depth, (~(guessed & edges)).astype(np.float32)
