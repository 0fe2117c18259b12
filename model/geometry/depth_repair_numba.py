"""Compiled CPU kernels of the depth repair (numba, serial, nopython, cached on disk, GIL released).

One pass over the frame removes flying pixels and lists the guessed (invalid) ones; everything after works on that
list (a few percent of a camera frame): filling each invalid run along its row and column from the run's two ends,
and the reliability, which looks at the window around guessed pixels only. Arithmetic follows the NumPy definitions in
`model.geometry.depth_repair`'s docstrings (float32 products, integer colour costs), so the results are the same.
Use `model.geometry.repair_depth` / `fill_depth_holes`, which validate inputs.
"""

from __future__ import annotations

import threading

import numba
import numpy as np

# "no candidate yet": larger than any colour cost (3 * 255, or a float colour's truncation)
_NO_COST = np.int64(1) << 62


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _kept(z, a, b, c, d, lower, upper):  # pragma: no cover - compiled
    """z, or 0 if it is a flying pixel: a valid neighbour (a..d) nearer than z * lower and one farther than z * upper.
    A neighbour equal to z (the border, replicated) is neither."""
    nearer = ((a > 0) & (a < z * lower)) | ((b > 0) & (b < z * lower)) | ((c > 0) & (c < z * lower))
    nearer |= (d > 0) & (d < z * lower)
    farther = (a > z * upper) | (b > z * upper) | (c > z * upper) | (d > z * upper)
    return np.float32(0.0) if nearer & farther else z


@numba.njit(cache=True, nogil=True, error_model="numpy")
def mark_flying(depth, max_depth_ratio, remove_flying, out, guessed, pixels):  # pragma: no cover - compiled
    """out (H, W) = depth with flying pixels (a valid 4-neighbour nearer than z (1 - ratio) and one farther than
    z (1 + ratio)) set to 0 when remove_flying; guessed (H, W) uint8 = 1 where out is invalid, and pixels (2, >= H W)
    int32 starts with their (row, column) in row-major order. Returns their number."""
    height, width = depth.shape
    lower = np.float32(1.0 - max_depth_ratio)
    upper = np.float32(1.0 + max_depth_ratio)
    count = 0
    for y in range(height):
        row, above, below = depth[y], depth[max(y - 1, 0)], depth[min(y + 1, height - 1)]
        kept, marks = out[y], guessed[y]
        if remove_flying:
            # branch-free so the row vectorises; the two end columns replicate themselves as their missing neighbour
            last = width - 1
            kept[0] = _kept(row[0], above[0], below[0], row[0], row[min(1, last)], lower, upper)
            for x in range(1, last):
                kept[x] = _kept(row[x], above[x], below[x], row[x - 1], row[x + 1], lower, upper)
            if last > 0:
                kept[last] = _kept(row[last], above[last], below[last], row[last - 1], row[last], lower, upper)
        else:
            kept[:] = row
        for x in range(width):
            marks[x] = not (kept[x] > 0)
        for x in range(width):
            if marks[x]:
                pixels[0, count], pixels[1, count] = y, x
                count += 1
    return count


@numba.njit(cache=True, nogil=True, error_model="numpy")
def fill_runs(depth, guessed, pixels, count, image, use_colour, max_gap_px, cost, runs):  # pragma: no cover - compiled
    """Fill the guessed pixels of depth (H, W) in place (pixels[:, :count], row-major) from the two ends of their
    invalid run along the row and, with colour, along the column: runs of at most max_gap_px; a run touching the
    border has its one end. Of all candidates a pixel gets, the closest in colour wins (sum of absolute differences),
    on a tie the farther depth. Work memory: cost (H, W) int64, runs (>= 2 H W, 4) int32.

    The runs are listed first and filled in one loop afterwards: the offers then read only valid depths, and the
    loop inlines (a helper taking arrays, called per pixel, costs atomic reference counting per call)."""
    height, width = depth.shape
    rows, cols = pixels[0], pixels[1]
    num_runs = 0
    i = 0
    while i < count:  # row runs: consecutive entries of the row-major list
        y, x0 = rows[i], cols[i]
        cost[y, x0] = _NO_COST
        j = i + 1
        while j < count and rows[j] == y and cols[j] == x0 + (j - i):
            cost[y, cols[j]] = _NO_COST
            j += 1
        if j - i <= max_gap_px:
            runs[num_runs, 0], runs[num_runs, 1], runs[num_runs, 2], runs[num_runs, 3] = y, x0, 0, j - i
            num_runs += 1
        i = j
    if use_colour:  # without colour the rows alone decide (the stereo-shadow rule)
        for i in range(count):
            y0, x = rows[i], cols[i]
            if y0 > 0 and guessed[y0 - 1, x]:
                continue  # not the top of its column run
            y1 = y0 + 1
            while y1 < height and guessed[y1, x]:
                y1 += 1
            if y1 - y0 <= max_gap_px:
                runs[num_runs, 0], runs[num_runs, 1], runs[num_runs, 2], runs[num_runs, 3] = y0, x, 1, y1 - y0
                num_runs += 1
    for r in range(num_runs):
        y0, x0, down, length = runs[r, 0], runs[r, 1], runs[r, 2], runs[r, 3]
        dy, dx = down, 1 - down
        for end in (np.int64(-1), np.int64(length)):  # the valid pixel before the run and the one after it
            cy, cx = y0 + dy * end, x0 + dx * end
            if cy >= height or cx >= width or cy < 0 or cx < 0:
                continue
            candidate = depth[cy, cx]
            for k in range(length):
                y, x = y0 + dy * k, x0 + dx * k
                c = np.int64(0)
                if use_colour:
                    for ch in range(3):
                        c += abs(np.int64(image[y, x, ch]) - np.int64(image[cy, cx, ch]))
                if c < cost[y, x] or (c == cost[y, x] and candidate > depth[y, x]):
                    cost[y, x] = c
                    depth[y, x] = candidate


@numba.njit(cache=True, nogil=True, error_model="numpy")
def write_reliability(depth, pixels, count, max_depth_ratio, radius_px, reliability):  # pragma: no cover - compiled
    """reliability (H, W) = 0 at the guessed pixels (pixels[:, :count]) whose (2 radius + 1)^2 window
    (clipped to the image) of valid depths spans more than max_depth_ratio (max > (1 + ratio) min), else 1."""
    height, width = depth.shape
    upper = np.float32(1.0 + max_depth_ratio)
    reliability[:] = 1.0
    for i in range(count):
        y, x = pixels[0, i], pixels[1, i]
        nearest, farthest = np.float32(np.inf), np.float32(0.0)
        for yy in range(max(y - radius_px, 0), min(y + radius_px + 1, height)):
            for xx in range(max(x - radius_px, 0), min(x + radius_px + 1, width)):
                z = depth[yy, xx]  # branch-free: valid or not is a coin toss at an edge
                nearest = min(nearest, z if z > 0 else np.float32(np.inf))
                farthest = max(farthest, z)
        if farthest > upper * nearest:
            reliability[y, x] = 0.0


# Per-thread work arrays, reused across calls (see warp_numba._WORKSPACE: first touches of fresh memory are costly).
_WORKSPACE = threading.local()


def work_arrays(height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(guessed (H, W) uint8, pixels (2, H W) int32, cost (H, W) int64, runs (2 H W, 4) int32) for this thread."""
    arrays = getattr(_WORKSPACE, "arrays", None)
    if arrays is None or arrays[0].shape != (height, width):
        arrays = (
            np.empty((height, width), np.uint8),
            np.empty((2, height * width), np.int32),
            np.empty((height, width), np.int64),
            np.empty((2 * height * width, 4), np.int32),
        )
        _WORKSPACE.arrays = arrays
    return arrays
