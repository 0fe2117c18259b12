"""Classical hole filling for warped views (the `warp` engine, and the "warp + Telea" evaluation baseline).

`pushpull` (default) fills every hole from a weighted image pyramid of the valid pixels (Gortler et al. 1996): a
hole pixel takes the normalised average of the valid pixels at the coarsest level where its neighbourhood has any,
blended level by level. It never changes valid pixels, is smooth rather than streaky in large disocclusions, and
costs a few milliseconds at 480x640. Given the warped depth it leans towards the farther surfaces around a hole,
because a disocclusion shows what lay behind a foreground edge. `telea` is OpenCV's fast-marching inpainting
(Telea 2004), sharper on thin cracks but much slower on large holes.
"""

from __future__ import annotations

import cv2
import numba
import numpy as np

METHODS = ("pushpull", "telea")

# A valid pixel's weight is (depth / farthest depth) ** _BACKGROUND_BIAS in the depth-aware pyramid, and
# _NO_DEPTH_WEIGHT where it has no depth (it still counts where nothing else is near).
_BACKGROUND_BIAS = 4
_NO_DEPTH_WEIGHT = 1e-3
# A partly covered pyramid pixel trusts its own colour with alpha = min(1, _PULL_GAIN * coverage fraction).
_PULL_GAIN = 16.0
_TELEA_RADIUS_PX = 3


class InpaintError(ValueError):
    """Invalid input to fill_holes; the message says what to pass instead."""


@numba.njit(cache=True, nogil=True)
def _farthest_depth(mask, depth):  # pragma: no cover - compiled
    """The largest finite depth of a valid pixel, 0.0 when there is none; depth is C-contiguous float32."""
    # Non-negative float32 values order like their bit patterns: an integer maximum, which the compiler vectorises
    # (a float maximum it must not, for NaN's sake). NaN, infinite and negative depths count as 0.
    values = depth.reshape(-1)
    bits = values.view(np.int32)
    valid = mask.reshape(-1)
    farthest = 0
    for i in range(values.size):
        farthest = max(farthest, bits[i] if valid[i] and values[i] < np.inf else 0)
    return np.array([farthest], np.int32).view(np.float32)[0]


@numba.njit(cache=True, nogil=True)
def _half_resolution(image, mask, depth, farthest):  # pragma: no cover - compiled
    """Pyramid level 1 straight from full resolution: 2x2 means of colour * weight and of weight, (h/2, w/2, 4).

    A pixel's weight (`push_pull`'s rule) is computed on the way, one row pair at a time (its weights and weighted
    colours summed per column, then column pairs averaged): no full-resolution weight or float image is ever stored.
    depth None: every valid pixel weighs 1.
    """
    height, width = mask.shape
    half_h, half_w = (height + 1) // 2, (width + 1) // 2
    level = np.empty((half_h, half_w, 4), np.float32)
    inverse = 1.0 / farthest if farthest > 0.0 else 0.0
    no_depth_weight = _NO_DEPTH_WEIGHT if farthest > 0.0 else 1.0
    row_weights = np.empty(width, np.float32)
    # per column, summed over the row pair; the column past an odd width stays 0
    weights = np.zeros(2 * half_w, np.float32)
    colour = np.zeros((2 * half_w, 3), np.float32)
    for hy in range(half_h):
        top = 2 * hy
        rows = min(2, height - top)
        for y in range(top, top + rows):
            if depth is None:
                for x in range(width):
                    row_weights[x] = 1.0 if mask[y, x] else 0.0
            else:
                for x in range(width):
                    d = depth[y, x]
                    if not mask[y, x]:
                        row_weights[x] = 0.0
                    elif d > 0.0 and d < np.inf:
                        ratio = d * inverse
                        row_weights[x] = ratio**_BACKGROUND_BIAS
                    else:  # a valid pixel without a depth still counts where nothing else is near
                        row_weights[x] = no_depth_weight
            first = y == top
            for x in range(width):
                weight = row_weights[x]
                weights[x] = weight if first else weights[x] + weight
                for c in range(3):
                    weighted = image[y, x, c] * weight
                    colour[x, c] = weighted if first else colour[x, c] + weighted
        for hx in range(half_w):
            left = 2 * hx
            scale = np.float32(1.0 / (rows * min(2, width - left)))
            for c in range(3):
                level[hy, hx, c] = scale * (colour[left, c] + colour[left + 1, c])
            level[hy, hx, 3] = scale * (weights[left] + weights[left + 1])
    return level


@numba.njit(cache=True, nogil=True)
def _pull(level, upsampled, gain):  # pragma: no cover - compiled
    """Blend a level's own normalised colour over the upsampled coarser estimate by its coverage (in place)."""
    height, width = upsampled.shape[:2]
    for y in range(height):
        for x in range(width):
            weight = level[y, x, 3]
            if weight > 0.0:
                alpha = min(weight * gain, 1.0)
                inverse = 1.0 / weight
                for c in range(3):
                    upsampled[y, x, c] += alpha * (level[y, x, c] * inverse - upsampled[y, x, c])
    return upsampled


@numba.njit(cache=True, nogil=True)
def _compose(image, mask, half):  # pragma: no cover - compiled
    """uint8 result: valid pixels copied, holes sampled bilinearly from the filled half-resolution level."""
    height, width = mask.shape
    half_h, half_w = half.shape[:2]
    out = image.copy()
    # full-resolution pixel centre x (or y) sits at (x - 0.5) / 2 in half-resolution pixel coordinates; the column
    # terms are the same on every row, so they are computed once
    x0s = np.empty(width, np.int64)
    x1s = np.empty(width, np.int64)
    wxs = np.empty(width, np.float64)
    for x in range(width):
        fx = min(max((x - 0.5) * 0.5, 0.0), half_w - 1.0)
        x0s[x] = min(int(fx), half_w - 1)
        x1s[x] = min(x0s[x] + 1, half_w - 1)
        wxs[x] = fx - x0s[x]
    for y in range(height):
        fy = min(max((y - 0.5) * 0.5, 0.0), half_h - 1.0)
        y0 = min(int(fy), half_h - 1)
        y1 = min(y0 + 1, half_h - 1)
        wy = fy - y0
        for x in range(width):
            if mask[y, x]:
                continue
            x0, x1, wx = x0s[x], x1s[x], wxs[x]
            for c in range(3):
                top = half[y0, x0, c] + wx * (half[y0, x1, c] - half[y0, x0, c])
                bottom = half[y1, x0, c] + wx * (half[y1, x1, c] - half[y1, x0, c])
                value = top + wy * (bottom - top)
                out[y, x, c] = np.uint8(min(max(value + 0.5, 0.0), 255.0))
    return out


def push_pull(image: np.ndarray, mask: np.ndarray, depth: np.ndarray | None = None) -> np.ndarray:
    """Weighted push-pull fill of the pixels where `mask` is False.

    Weights: 0 on holes; on valid pixels 1 without depth, else (depth / the farthest valid depth) **
    _BACKGROUND_BIAS, and _NO_DEPTH_WEIGHT where a valid pixel has no finite positive depth (1 when none has).

    Push: a pyramid of colour * weight and weight, halving until one row or column is left. Pull: from coarse to
    fine, each level keeps its own normalised colour where it has weight and takes the upsampled coarser estimate
    elsewhere. Full resolution only needs the hole pixels, so the pull stops at half resolution and holes are
    sampled from there.

    Args:
        image: (H, W, 3) uint8; mask: (H, W) bool, True on valid pixels; depth: (H, W) float32 metres or None; all
            C-contiguous.
    Returns:
        (H, W, 3) uint8 with valid pixels unchanged.
    """
    farthest = 0.0 if depth is None else _farthest_depth(mask, depth)
    levels = [_half_resolution(image, mask, depth, farthest)]
    while min(levels[-1].shape[:2]) > 1:
        levels.append(cv2.pyrDown(levels[-1]))
    top = levels[-1]
    filled = np.ascontiguousarray(top[..., :3] / np.maximum(top[..., 3:4], 1e-12))
    for level in reversed(levels[:-1]):
        upsampled = cv2.pyrUp(filled, dstsize=(level.shape[1], level.shape[0]))
        # cv2 drops the channel axis of single-column images
        filled = _pull(level, upsampled.reshape(level.shape[:2] + (3,)), _PULL_GAIN)
    return _compose(image, mask, filled)


def fill_holes(
    image: np.ndarray, mask: np.ndarray, depth: np.ndarray | None = None, method: str = "pushpull"
) -> np.ndarray:
    """Fill the pixels where `mask` is False.

    Args:
        image: (H, W, 3) uint8, the warped view (hole content is ignored).
        mask: (H, W) bool, True where the pixel is valid and kept unchanged.
        depth: optional (H, W) metres of the valid pixels; `pushpull` then prefers far surfaces for the fill.
        method: "pushpull" (fast default) or "telea" (cv2.inpaint).
    Returns:
        (H, W, 3) uint8 with valid pixels untouched and every hole filled.
    """
    image = np.asarray(image)
    mask = np.asarray(mask, dtype=bool)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InpaintError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    if mask.shape != image.shape[:2]:
        raise InpaintError(f"mask {mask.shape} must match the image's (H, W) {image.shape[:2]}")
    if depth is not None and np.shape(depth) != mask.shape:
        raise InpaintError(f"depth {np.shape(depth)} must match the mask {mask.shape}")
    if method not in METHODS:
        raise InpaintError(f"method must be one of {METHODS}, got {method!r}")
    if mask.all():
        return image.copy()
    if not mask.any():
        # Nothing to propagate from: a mid-grey frame is the least wrong answer and keeps shapes valid.
        return np.full_like(image, 128)
    if method == "telea":
        return cv2.inpaint(np.ascontiguousarray(image), (~mask).astype(np.uint8), _TELEA_RADIUS_PX, cv2.INPAINT_TELEA)
    depth = None if depth is None else np.ascontiguousarray(depth, dtype=np.float32)
    return push_pull(np.ascontiguousarray(image), np.ascontiguousarray(mask), depth)
