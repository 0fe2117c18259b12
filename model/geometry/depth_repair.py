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
   pixel belongs to) and 1 elsewhere; the warp lowers the coverage of unreliable pixels but keeps them in its mask
   (on Middlebury Motorcycle they are 20 dB against the right image, where a hole filler gets 15 dB).

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


def _checked_image(image: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    if image is None:
        return None
    image = np.asarray(image)
    if image.shape[:2] != shape or image.ndim != 3 or image.shape[2] < 3:
        raise GeometryError(
            f"image {image.shape} must be (H, W, 3) matching depth {shape} (align depth to colour first)"
        )
    return image


# stands in for "no colour" in the compiled kernels, which take one array type per argument
_NO_IMAGE = np.zeros((1, 1, 3), np.uint8)


def _mark_and_fill(
    depth: np.ndarray,
    max_gap_px: int,
    image: np.ndarray | None,
    max_depth_ratio: float | None,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """(filled copy of depth, written to `out` if given, guessed pixels' (row, column) (2, N), their number); flying
    pixels removed first unless max_depth_ratio is None. The index array is this thread's work memory: use it before
    the next call."""
    from model.geometry.depth_repair_numba import fill_runs, mark_flying, work_arrays

    guessed, pixels, cost, runs = work_arrays(*depth.shape)
    out = np.empty_like(depth) if out is None else out
    remove_flying = max_depth_ratio is not None
    count = mark_flying(depth, max_depth_ratio if remove_flying else 0.0, remove_flying, out, guessed, pixels)
    if count and max_gap_px > 0:
        colour = _NO_IMAGE if image is None else image
        fill_runs(out, guessed, pixels, count, colour, image is not None, max_gap_px, cost, runs)
    return out, pixels, count


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
    image = _checked_image(image, depth.shape)
    if max_gap_px <= 0 or not (depth <= 0).any():
        return depth
    return _mark_and_fill(depth, max_gap_px, image, None)[0]


def flying_pixels(depth: np.ndarray, max_depth_ratio: float) -> np.ndarray:
    """(H, W) bool: valid pixels with one 4-neighbour nearer and one farther by more than `max_depth_ratio`
    (relative): a measurement between two surfaces, which belongs to neither."""
    depth = validate_depth(depth)
    kept = _mark_and_fill(depth, 0, None, max_depth_ratio)[0]
    return (kept <= 0) & (depth > 0)


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
    """Steps 1-3 of the module docstring on one frame or, frame by frame, on a clip.

    Args:
        depth: (H, W) or (T, H, W) metres, 0/NaN/inf invalid. image: (H, W, 3) or (T, H, W, 3) aligned colour, or
            None (farther-side filling).
        max_gap_px: longest invalid run to fill (0: no filling, no flying-pixel removal, reliability 1).
        max_depth_ratio: relative depth step that counts as an edge (the warp's `WarpSettings.max_depth_ratio`).
        unreliable_px: a filled pixel within this many pixels of a depth edge (a pixel beside a step) is unreliable.
    Returns:
        depth and reliability, both float32 shaped like the input depth; reliability in {0, 1}.
    """
    from model.geometry.depth_repair_numba import write_reliability

    clip = np.ndim(depth) == 3
    depths = np.asarray(depth) if clip else np.asarray(depth)[None]
    images = None if image is None else (np.asarray(image) if clip else np.asarray(image)[None])
    if images is not None and images.shape[0] != depths.shape[0]:
        raise GeometryError(f"image {images.shape} must have one frame per depth frame {depths.shape}")
    # one output for the whole clip, written by the kernels frame by frame (no per-frame arrays to stack)
    repaired = np.empty(depths.shape, np.float32)
    reliability = np.empty(depths.shape, np.float32)
    for t, frame in enumerate(depths):
        frame = validate_depth(frame, f"depth[{t}]" if clip else "depth")
        colour = None if images is None else _checked_image(images[t], frame.shape)
        if max_gap_px <= 0:
            repaired[t], reliability[t] = frame, 1.0
            continue
        _, guessed, count = _mark_and_fill(frame, max_gap_px, colour, max_depth_ratio, out=repaired[t])
        write_reliability(repaired[t], guessed, count, max_depth_ratio, unreliable_px + 1, reliability[t])
    return (repaired, reliability) if clip else (repaired[0], reliability[0])
