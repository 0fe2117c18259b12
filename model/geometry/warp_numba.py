"""Compiled CPU kernel of the forward warp (numba, serial, nopython, cached on disk).

The source pixel grid is a triangle mesh: each 2x2 block of valid pixels gives two triangles whose corners are the
pixel centres lifted to 3D and projected into the target camera. Triangles are rasterised at target pixel centres
with a z-buffer on inverse depth (nearest wins; on exact ties the first triangle in row-major order, which the torch
path reproduces). Colour is interpolated with screen-space barycentric weights, depth perspective-correctly (1/z),
so a plane comes out exactly. A triangle is dropped when it spans a depth discontinuity that really opens in the
target (relative depth jump above `max_depth_ratio` and a parallax difference above `max_parallax_px`, and above
what the depth noise `depth_noise_inv_m` alone opens): that gap is a disocclusion and stays a hole. The dropped
triangles ("skirts") bound space the source never saw; with `occlude_unseen`, surfaces of the same frame that land
behind the part of a skirt within `unseen_depth_ratio` of its nearest corner are not trusted either (they may be
hidden by that unseen space, such as a robot's far side). A per-source-pixel reliability, interpolated like colour,
scales the confidence of target pixels below 0.5 by UNRELIABLE_COVERAGE (guessed depth at edges,
`model.geometry.repair_depth`). Use `model.geometry.forward_warp`, which validates inputs.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numba
import numpy as np

from model.geometry.base import EDGE_EPS as _EDGE_EPS  # a module global, so numba compiles it in as a constant
from model.geometry.base import NOISE_SIGMAS, UNRELIABLE_COVERAGE, WarpSettings, intrinsics_vector


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _columns(ksrc, rotation, column):  # pragma: no cover - compiled
    """column (3, W) = R[:, 0] * xn(u): the per-u part of R @ (z * ray(u, v))."""
    for u in range(column.shape[1]):
        xn = (u - ksrc[2]) / ksrc[0]
        for k in range(3):
            column[k, u] = rotation[k, 0] * xn


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _rows(ksrc, rotation, v):  # pragma: no cover - compiled
    """The per-v part of R @ (z * ray(u, v)): R[:, 1] * yn(v) + R[:, 2]."""
    yn = (v - ksrc[3]) / ksrc[1]
    return (
        rotation[0, 1] * yn + rotation[0, 2],
        rotation[1, 1] * yn + rotation[1, 2],
        rotation[2, 1] * yn + rotation[2, 2],
    )


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _depth_row(depth, v, column, row2, tz, near, out):  # pragma: no cover - compiled
    """out (W,) = source depth of row v where the point is usable (valid, in front of the target's near plane),
    else 0."""
    for u in range(depth.shape[1]):
        z = np.float64(depth[v, u])
        zd = z * (column[2, u] + row2) + tz
        out[u] = z if (z > 0.0) & (z < np.inf) & (zd > near) else 0.0  # also rejects NaN


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _project(z, u, column, row0, row1, row2, kdst, translation):  # pragma: no cover - compiled
    """(x, y, 1 / z) in the target of the source point at column u with depth z (usable, see _depth_row)."""
    inv = 1.0 / (z * (column[2, u] + row2) + translation[2])
    x = kdst[0] * (z * (column[0, u] + row0) + translation[0]) * inv + kdst[2]
    y = kdst[1] * (z * (column[1, u] + row1) + translation[1]) * inv + kdst[3]
    return x, y, inv


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _project_row(depth, v, ksrc, kdst, rotation, translation, near, column, out):  # pragma: no cover - compiled
    """out (4, W) = (x, y, 1 / z, z) of source row v in the target; z = 0 marks a point without use (see _depth_row),
    whose other entries are then meaningless. Branch-free, so the divisions vectorise."""
    row0, row1, row2 = _rows(ksrc, rotation, v)
    for u in range(depth.shape[1]):
        z = np.float64(depth[v, u])
        zd = z * (column[2, u] + row2) + translation[2]
        out[0, u], out[1, u], out[2, u] = _project(z, u, column, row0, row1, row2, kdst, translation)
        out[3, u] = z if (z > 0.0) & (z < np.inf) & (zd > near) else 0.0  # also rejects NaN


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _keep_triangle(z0, z1, z2, max_depth_ratio, parallax_scale, max_parallax_px):  # pragma: no cover
    """False for a corner without a point, or for a depth discontinuity that opens up in the target."""
    if z0 == 0.0 or z1 == 0.0 or z2 == 0.0:
        return False
    zlo = min(z0, min(z1, z2))
    zhi = max(z0, max(z1, z2))
    # Corners whose inverse depths differ by d move apart by about f * |t| * d target pixels.
    return not (zhi > zlo * (1.0 + max_depth_ratio) and parallax_scale * (1.0 / zlo - 1.0 / zhi) > max_parallax_px)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _is_skirt(z0, z1, z2, max_depth_ratio, parallax_scale, max_parallax_px):  # pragma: no cover
    """True for a triangle dropped only because it spans a depth discontinuity that opens in the target."""
    if z0 == 0.0 or z1 == 0.0 or z2 == 0.0:
        return False
    return not _keep_triangle(z0, z1, z2, max_depth_ratio, parallax_scale, max_parallax_px)


# Corner reliabilities at least this high make every convex mix of them >= 0.5, even with the barycentric weights'
# EDGE_EPS undershoot (and float rounding, ~1e-16).
_TRUSTED = 0.5 + 1e-6

# Scanline spans of a triangle are widened by this much, and edges flatter than _FLAT_EDGE_PX contribute both ends:
# every pixel centre the barycentric test accepts (within EDGE_EPS of the triangle, i.e. < 1e-7 px for triangles of
# at most 64 px, at most ~0.006 px along a row for the steepest non-flat edge) lies inside the widened span.
_SPAN_MARGIN_PX = 0.01
_FLAT_EDGE_PX = 1e-3


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _edge_span(xa, ya, xb, yb, y, lo, hi):  # pragma: no cover - compiled
    """(lo, hi) grown to the x where edge a-b meets row y (the row clamped onto the edge's extent), or to both of its
    ends if it is nearly horizontal; unchanged if the row misses the edge."""
    y_lo, y_hi = min(ya, yb), max(ya, yb)
    if y < y_lo - 1e-6 or y > y_hi + 1e-6:
        return lo, hi
    if y_hi - y_lo < _FLAT_EDGE_PX:
        return min(lo, min(xa, xb)), max(hi, max(xa, xb))
    x = xa + (min(max(y, y_lo), y_hi) - ya) * (xb - xa) / (yb - ya)
    return min(lo, x), max(hi, x)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _raster_skirt(x0, y0, x1, y1, x2, y2, iz0, iz1, iz2, max_tri_px, unseen_scale, skirt, span):  # pragma: no cover
    """skirt (h, w) = max(skirt, the triangle's interpolated inverse depth) at the pixel centres it covers where that
    is at least its largest corner's divided by unseen_scale (the unseen thing's assumed reach, 1 + unseen_depth_ratio);
    span (h, 2) grows to the first and last column written in each row."""
    if not (_fits(x0, x1, x2, max_tri_px) and _fits(y0, y1, y2, max_tri_px)):
        return
    area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
    if area == 0.0:
        return
    out_h, out_w = skirt.shape
    xmin = max(math.ceil(min(x0, min(x1, x2)) - _EDGE_EPS), 0)
    xmax = min(math.floor(max(x0, max(x1, x2)) + _EDGE_EPS), out_w - 1)
    ymin = max(math.ceil(min(y0, min(y1, y2)) - _EDGE_EPS), 0)
    ymax = min(math.floor(max(y0, max(y1, y2)) + _EDGE_EPS), out_h - 1)
    inv = 1.0 / area
    nearest = max(iz0, max(iz1, iz2)) / unseen_scale
    for y in range(ymin, ymax + 1):
        # a long thin skirt's bounding box is mostly empty: test only the pixels near the row's span
        lo, hi = _edge_span(x0, y0, x1, y1, y, np.inf, -np.inf)
        lo, hi = _edge_span(x1, y1, x2, y2, y, lo, hi)
        lo, hi = _edge_span(x2, y2, x0, y0, y, lo, hi)
        for x in range(max(xmin, math.ceil(lo - _SPAN_MARGIN_PX)), min(xmax, math.floor(hi + _SPAN_MARGIN_PX)) + 1):
            w0 = ((x1 - x) * (y2 - y) - (y1 - y) * (x2 - x)) * inv
            w1 = ((x2 - x) * (y0 - y) - (y2 - y) * (x0 - x)) * inv
            w2 = 1.0 - w0 - w1
            iz = w0 * iz0 + w1 * iz1 + w2 * iz2
            if w0 >= -_EDGE_EPS and w1 >= -_EDGE_EPS and w2 >= -_EDGE_EPS and iz >= nearest:
                skirt[y, x] = max(skirt[y, x], iz)
                span[y, 0] = min(span[y, 0], x)
                span[y, 1] = max(span[y, 1], x)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _clear_skirt(skirt, span):  # pragma: no cover
    """Zero skirt (h, w), which is zero outside each row's span (first, last written column), and empty the spans."""
    for y in range(skirt.shape[0]):
        if span[y, 0] <= span[y, 1]:
            skirt[y, span[y, 0] : span[y, 1] + 1] = 0.0
        span[y, 0], span[y, 1] = skirt.shape[1], -1


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _thresholds(kdst, translation, max_parallax_px, noise_gap):  # pragma: no cover
    """(parallax_scale, max_parallax_px) of a frame: corners whose inverse depths differ by d move apart by about
    parallax_scale * d target pixels, and a step within the depth noise (noise_gap in inverse depth) is one surface
    however far the parallax opens it."""
    parallax_scale = max(kdst[0], kdst[1]) * math.sqrt(translation[0] ** 2 + translation[1] ** 2 + translation[2] ** 2)
    return parallax_scale, max(max_parallax_px, parallax_scale * noise_gap)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _raster_skirts(
    depth,
    ksrc,
    kdst,
    rotation,
    translation,
    max_depth_ratio,
    max_parallax_px,
    noise_gap,
    max_tri_px,
    near,
    occlude_unseen,
    unseen_scale,
    column,
    zrows,
    skirt,
    span,
    v_begin,
    v_end,
):  # pragma: no cover
    """Rasterise the discontinuity triangles ("skirts") of the quad rows v_begin <= v < v_end of one frame into
    skirt (h, w), reset to 0 first, and their extent in each row into span (h, 2); without occlude_unseen only the
    reset. Working memory: column (3, W) and zrows (2, W) float64.

    A skirt spans the space between a foreground edge and the background behind it, which the source camera never
    saw: something may stand there. A surface of the same frame that lands behind a skirt in the target may really
    be hidden by that unseen something (a robot's far side), so the caller does not trust it.
    Only depths are streamed (zrows (2, W) holds two source rows); the few skirt corners are projected on demand.
    """
    _clear_skirt(skirt, span)
    if not occlude_unseen:
        return
    _columns(ksrc, rotation, column)
    parallax_scale, max_parallax_px = _thresholds(kdst, translation, max_parallax_px, noise_gap)
    _depth_row(depth, v_begin, column, _rows(ksrc, rotation, v_begin)[2], translation[2], near, zrows[v_begin & 1])
    for v in range(v_begin, v_end):
        top, bottom = zrows[v & 1], zrows[(v + 1) & 1]
        r0, r1, r2 = _rows(ksrc, rotation, v)
        s0, s1, s2 = _rows(ksrc, rotation, v + 1)
        _depth_row(depth, v + 1, column, s2, translation[2], near, bottom)
        for u in range(depth.shape[1] - 1):
            za, zb, zc, zd = top[u], top[u + 1], bottom[u], bottom[u + 1]
            zlo = min(min(za, zb), min(zc, zd))
            if zlo > 0.0 and max(max(za, zb), max(zc, zd)) <= zlo * (1.0 + max_depth_ratio):
                continue
            skirt0 = _is_skirt(za, zb, zc, max_depth_ratio, parallax_scale, max_parallax_px)
            skirt1 = _is_skirt(zb, zd, zc, max_depth_ratio, parallax_scale, max_parallax_px)
            if not (skirt0 or skirt1):
                continue
            xb, yb, izb = _project(zb, u + 1, column, r0, r1, r2, kdst, translation)
            xc, yc, izc = _project(zc, u, column, s0, s1, s2, kdst, translation)
            if skirt0:
                xa, ya, iza = _project(za, u, column, r0, r1, r2, kdst, translation)
                _raster_skirt(xa, ya, xb, yb, xc, yc, iza, izb, izc, max_tri_px, unseen_scale, skirt, span)
            if skirt1:
                xd, yd, izd = _project(zd, u + 1, column, s0, s1, s2, kdst, translation)
                _raster_skirt(xb, yb, xd, yd, xc, yc, izb, izd, izc, max_tri_px, unseen_scale, skirt, span)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _fits(a, b, c, max_px):  # pragma: no cover
    """True if three coordinates span at most max_px target pixels."""
    return max(a, max(b, c)) - min(a, min(b, c)) <= max_px


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _confidence(area, inv_expected_area):  # pragma: no cover
    """1 where the source is not magnified, 1 / (linear magnification) where it is."""
    magnification = abs(area) * inv_expected_area
    return 1.0 if magnification <= 1.0 else 1.0 / math.sqrt(magnification)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _splat_frame(
    image,
    depth,
    reliability,
    ksrc,
    kdst,
    rotation,
    translation,
    max_depth_ratio,
    max_parallax_px,
    noise_gap,
    max_tri_px,
    near,
    izbuf,
    colour,
    conf,
    rows,
    column,
    skirt,
    span,
    rounding,
    v_begin,
    v_end,
    reset,
):  # pragma: no cover
    """Rasterise the quad rows v_begin <= v < v_end of one source frame (image (H, W, 3), depth (H, W)) into izbuf
    (h, w) float64, the inverse depth (0 = empty; perspective-correct interpolation is linear in 1/z, and larger
    means nearer; zeroed first if `reset`), colour (h, w, 3) and conf (h, w) float32. Working memory: rows (2, 4, W)
    and column (3, W) float64. A surface landing more than max_depth_ratio behind the frame's skirts, skirt (h, w)
    with its extent in each row span (h, 2) (`_raster_skirts`, all rows of the frame), is not written. `rounding` is
    0.5 for unsigned integer colour (the store truncates, so this rounds half up; a convex mix of valid values stays
    in range) and 0 for float colour.

    The grid is walked quad by quad, corners a = (v, u), b = (v, u+1), c = (v+1, u), d = (v+1, u+1), triangles
    abc then bdc sharing one bounding box; a pixel centre inside abc is not tested against bdc. Source rows are
    projected as the walk reaches them (two rows live in `rows`), so the points never round-trip through memory.
    The raster loop is inlined by hand: numba calls that pass many arrays per triangle cost more than the
    rasterisation itself.
    """
    width = depth.shape[1]
    out_h, out_w = izbuf.shape
    if reset:
        izbuf[:] = 0.0
    _columns(ksrc, rotation, column)
    parallax_scale, max_parallax_px = _thresholds(kdst, translation, max_parallax_px, noise_gap)
    # Twice a half-pixel triangle's area (the edge-function convention), in target pixels.
    inv_expected_area = (ksrc[0] * ksrc[1]) / (kdst[0] * kdst[1])
    behind = 1.0 + max_depth_ratio
    _project_row(depth, v_begin, ksrc, kdst, rotation, translation, near, column, rows[v_begin & 1])
    for v in range(v_begin, v_end):
        top, bottom = rows[v & 1], rows[(v + 1) & 1]
        _project_row(depth, v + 1, ksrc, kdst, rotation, translation, near, column, bottom)
        for u in range(width - 1):
            za, zb, zc, zd = top[3, u], top[3, u + 1], bottom[3, u], bottom[3, u + 1]
            zlo = min(min(za, zb), min(zc, zd))
            if zlo > 0.0 and max(max(za, zb), max(zc, zd)) <= zlo * (1.0 + max_depth_ratio):
                keep0 = keep1 = True  # the common case: four valid corners on one smooth surface
            else:
                keep0 = _keep_triangle(za, zb, zc, max_depth_ratio, parallax_scale, max_parallax_px)
                keep1 = _keep_triangle(zb, zd, zc, max_depth_ratio, parallax_scale, max_parallax_px)
                if not (keep0 or keep1):
                    continue
            xa, ya, xb, yb, xc, yc, xd, yd = (
                top[0, u],
                top[1, u],
                top[0, u + 1],
                top[1, u + 1],
                bottom[0, u],
                bottom[1, u],
                bottom[0, u + 1],
                bottom[1, u + 1],
            )
            lo_x, hi_x = min(min(xa, xb), min(xc, xd)), max(max(xa, xb), max(xc, xd))
            lo_y, hi_y = min(min(ya, yb), min(yc, yd)), max(max(ya, yb), max(yc, yd))
            if not (keep0 and keep1 and hi_x - lo_x <= max_tri_px and hi_y - lo_y <= max_tri_px):
                # Rare: a triangle was dropped or the quad is large, so check each triangle's own extent and take
                # the bounding box of the kept ones (b and c belong to both, a only to abc, d only to bdc).
                keep0 = keep0 and _fits(xa, xb, xc, max_tri_px) and _fits(ya, yb, yc, max_tri_px)
                keep1 = keep1 and _fits(xb, xd, xc, max_tri_px) and _fits(yb, yd, yc, max_tri_px)
                if not (keep0 or keep1):
                    continue
                lo_x, hi_x, lo_y, hi_y = min(xb, xc), max(xb, xc), min(yb, yc), max(yb, yc)
                if keep0:
                    lo_x, hi_x, lo_y, hi_y = min(lo_x, xa), max(hi_x, xa), min(lo_y, ya), max(hi_y, ya)
                if keep1:
                    lo_x, hi_x, lo_y, hi_y = min(lo_x, xd), max(hi_x, xd), min(lo_y, yd), max(hi_y, yd)
            xmin = max(math.ceil(lo_x - _EDGE_EPS), 0)
            xmax = min(math.floor(hi_x + _EDGE_EPS), out_w - 1)
            ymin = max(math.ceil(lo_y - _EDGE_EPS), 0)
            ymax = min(math.floor(hi_y + _EDGE_EPS), out_h - 1)
            if xmin > xmax or ymin > ymax:
                continue
            area0 = (xb - xa) * (yc - ya) - (yb - ya) * (xc - xa)
            area1 = (xd - xb) * (yc - yb) - (yd - yb) * (xc - xb)
            keep0 = keep0 and area0 != 0.0
            keep1 = keep1 and area1 != 0.0
            inv0 = 1.0 / area0 if keep0 else 0.0
            inv1 = 0.0  # computed on first use: most centres are settled by abc
            iza, izb, izc, izd = top[2, u], top[2, u + 1], bottom[2, u], bottom[2, u + 1]
            ra, rb, rc, rd = reliability[v, u], reliability[v, u + 1], reliability[v + 1, u], reliability[v + 1, u + 1]
            # the common case: every corner reliable, so is every convex mix of them (no per-pixel interpolation)
            trusted = min(min(ra, rb), min(rc, rd)) >= _TRUSTED
            for y in range(ymin, ymax + 1):
                for x in range(xmin, xmax + 1):
                    inside = False
                    if keep0:
                        w0 = ((xb - x) * (yc - y) - (yb - y) * (xc - x)) * inv0
                        w1 = ((xc - x) * (ya - y) - (yc - y) * (xa - x)) * inv0
                        w2 = 1.0 - w0 - w1
                        inside = w0 >= -_EDGE_EPS and w1 >= -_EDGE_EPS and w2 >= -_EDGE_EPS
                        if inside:
                            iz = w0 * iza + w1 * izb + w2 * izc
                            if iz > izbuf[y, x] and (x < span[y, 0] or x > span[y, 1] or skirt[y, x] <= iz * behind):
                                izbuf[y, x] = iz
                                for ch in range(3):
                                    colour[y, x, ch] = (
                                        w0 * image[v, u, ch]
                                        + w1 * image[v, u + 1, ch]
                                        + w2 * image[v + 1, u, ch]
                                        + rounding
                                    )
                                trusted_here = trusted or w0 * ra + w1 * rb + w2 * rc >= 0.5
                                conf[y, x] = _confidence(area0, inv_expected_area) * (
                                    1.0 if trusted_here else UNRELIABLE_COVERAGE
                                )
                    if keep1 and not inside:
                        if inv1 == 0.0:
                            inv1 = 1.0 / area1
                        w0 = ((xd - x) * (yc - y) - (yd - y) * (xc - x)) * inv1
                        w1 = ((xc - x) * (yb - y) - (yc - y) * (xb - x)) * inv1
                        w2 = 1.0 - w0 - w1
                        if w0 >= -_EDGE_EPS and w1 >= -_EDGE_EPS and w2 >= -_EDGE_EPS:
                            iz = w0 * izb + w1 * izd + w2 * izc
                            if iz > izbuf[y, x] and (x < span[y, 0] or x > span[y, 1] or skirt[y, x] <= iz * behind):
                                izbuf[y, x] = iz
                                for ch in range(3):
                                    colour[y, x, ch] = (
                                        w0 * image[v, u + 1, ch]
                                        + w1 * image[v + 1, u + 1, ch]
                                        + w2 * image[v + 1, u, ch]
                                        + rounding
                                    )
                                trusted_here = trusted or w0 * rb + w1 * rd + w2 * rc >= 0.5
                                conf[y, x] = _confidence(area1, inv_expected_area) * (
                                    1.0 if trusted_here else UNRELIABLE_COVERAGE
                                )


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _hole_distance_row(izbuf, y, edge_px, hole, out):  # pragma: no cover
    """out (w,) int32 = distance along row y to the nearest hole (izbuf == 0), capped at edge_px (the image border
    is not a hole); hole (w,) is work memory. Branch-free loops over rows in L1, so they vectorise."""
    width = izbuf.shape[1]
    e = np.int32(edge_px)
    for x in range(width):
        hole[x] = izbuf[y, x] == 0.0
    for x in range(width):
        out[x] = np.int32(0) if hole[x] else e
    for k in range(1, edge_px):
        k32 = np.int32(k)
        for x in range(width - k):
            out[x] = min(out[x], k32 if hole[x + k] else e)
        for x in range(width - k):
            out[x + k] = min(out[x + k], k32 if hole[x] else e)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _finish_target(izbuf, conf, depth_out, edge_px, y_begin, y_end):  # pragma: no cover
    """Rows y_begin <= y < y_end of depth_out = 1 / izbuf where hit; conf *= min(d, edge_px) / edge_px with d the
    chessboard distance to the nearest hole (the image border is not a hole).

    Chessboard distance is separable: with h the distance to the nearest hole along each row, capped at edge_px,
    d(y, x) = min over |k| < edge_px of max(|k|, h(y + k, x)). One pass down the image keeps the 2 edge_px - 1 rows
    of h it needs in a ring, so izbuf is read once and every row loop is branch-free.
    """
    height, width = izbuf.shape
    span = 2 * edge_px - 1
    ring = np.empty((span, width), np.int32)
    d = np.empty(width, np.int32)
    hole = np.empty(width, np.bool_)
    scale = np.empty(edge_px + 1)
    for k in range(edge_px + 1):
        scale[k] = k / edge_px
    for y in range(max(y_begin - edge_px + 1, 0), min(y_begin + edge_px - 1, height)):
        _hole_distance_row(izbuf, y, edge_px, hole, ring[y % span])
    for y in range(y_begin, y_end):
        if y + edge_px - 1 < height:
            _hole_distance_row(izbuf, y + edge_px - 1, edge_px, hole, ring[(y + edge_px - 1) % span])
        d[:] = ring[y % span]
        for k in range(1, edge_px):
            k32 = np.int32(k)
            if y - k >= 0:
                above = ring[(y - k) % span]
                for x in range(width):
                    d[x] = min(d[x], max(k32, above[x]))
            if y + k < height:
                below = ring[(y + k) % span]
                for x in range(width):
                    d[x] = min(d[x], max(k32, below[x]))
        for x in range(width):
            depth_out[y, x] = 1.0 / izbuf[y, x] if izbuf[y, x] > 0.0 else 0.0
        for x in range(width):
            if d[x] < edge_px:
                conf[y, x] *= scale[d[x]]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _merge_skirts(skirt, span, band_skirt, band_span):  # pragma: no cover
    """skirt (h, w) = max(skirt, band_skirt) and span (h, 2) = the union of both rows' extents."""
    for y in range(skirt.shape[0]):
        first, last = band_span[y, 0], band_span[y, 1]
        for x in range(first, last + 1):
            skirt[y, x] = max(skirt[y, x], band_skirt[y, x])
        span[y, 0], span[y, 1] = min(span[y, 0], first), max(span[y, 1], last)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _merge_band(izbuf, colour, conf, band_izbuf, band_colour, band_conf):  # pragma: no cover
    """Where a later band of source rows is strictly nearer, take its inverse depth, colour and confidence; on equal
    depth the earlier band keeps the pixel, as in one row-major walk."""
    for y in range(izbuf.shape[0]):
        for x in range(izbuf.shape[1]):
            if band_izbuf[y, x] > izbuf[y, x]:
                izbuf[y, x] = band_izbuf[y, x]
                conf[y, x] = band_conf[y, x]
                for ch in range(3):
                    colour[y, x, ch] = band_colour[y, x, ch]


# Per-thread work arrays, reused across calls: in this sandbox the first touch of freshly mapped memory costs more
# than the rasterisation itself, so only the returned arrays are allocated per call. Band k of a call made on one
# thread always uses that thread's k-th set, whichever pool thread runs it.
_WORKSPACE = threading.local()


class _BandArrays:
    """Work arrays of one band of source rows: rows (2, 4, W), skirt rows (2, W), column (3, W), inverse depth
    (h, w) and skirt (h, w) float64, the skirt's span (h, 2) int64, and (bands after the first, which cannot write
    into the output) colour (h, w, 3) and confidence (h, w)."""

    def __init__(self, source_width: int, out_h: int, out_w: int) -> None:
        self.rows = np.empty((2, 4, source_width))
        self.skirt_rows = np.empty((2, source_width))
        self.column = np.empty((3, source_width))
        self.inverse_depth = np.empty((out_h, out_w))
        self.skirt = np.zeros((out_h, out_w))
        self.span = np.tile(np.array([out_w, -1]), (out_h, 1))
        self.conf = np.empty((out_h, out_w), np.float32)
        self.colour: dict[np.dtype, np.ndarray] = {}

    def colour_of(self, dtype: np.dtype) -> np.ndarray:
        if dtype not in self.colour:
            self.colour[dtype] = np.empty((*self.inverse_depth.shape, 3), dtype)
        return self.colour[dtype]


def _band_arrays(bands: int, source_width: int, out_h: int, out_w: int) -> list[_BandArrays]:
    arrays = getattr(_WORKSPACE, "bands", [])
    if not arrays or arrays[0].column.shape[1] != source_width or arrays[0].inverse_depth.shape != (out_h, out_w):
        arrays = []
    arrays = arrays + [_BandArrays(source_width, out_h, out_w) for _ in range(bands - len(arrays))]
    _WORKSPACE.bands = arrays
    return arrays[:bands]


_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _run_bands(function: Callable[..., None], calls: list[tuple]) -> None:
    """function(*calls[0]) on this thread and the others on a shared pool of threads (the kernels release the GIL)."""
    others = len(calls) - 1
    pending = []
    if others:
        with _POOLS_LOCK:
            pool = _POOLS.get(others)
            if pool is None:
                pool = _POOLS[others] = ThreadPoolExecutor(others, thread_name_prefix="warp-band")
        pending = [pool.submit(function, *call) for call in calls[1:]]
    function(*calls[0])
    for future in pending:
        future.result()


def kernel_thresholds(settings: WarpSettings) -> tuple[float, float, float, int, float]:
    """The settings as the kernels take them: (max_depth_ratio, max_parallax_px, noise_gap, max_tri_px, near)."""
    return (
        settings.max_depth_ratio,
        settings.max_parallax_px,
        NOISE_SIGMAS * settings.depth_noise_inv_m,
        settings.max_triangle_px,
        settings.near_m,
    )


def render_frames(
    images: np.ndarray,
    depths: np.ndarray,
    reliability: np.ndarray,
    K_src: np.ndarray,
    K_dst: np.ndarray,
    T_dst_src: np.ndarray,
    out_h: int,
    out_w: int,
    target_index: np.ndarray,
    settings: WarpSettings,
    threads: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rasterise N source frames into M target frames (inputs already validated by model.geometry.forward_warp_clip).

    Args:
        images: (N, H, W, 3); depths: (N, H, W) float32 m; reliability: (N, H, W) float32 in [0, 1] (a target pixel
            whose interpolated reliability is below 0.5 gets confidence 0); T_dst_src: (M, 4, 4).
        target_index: (N,) int, the target slot (and transform) each source frame renders into; a target's frames
            go in the given order, so on exactly equal depth the earlier one wins.
        settings: a model.geometry.WarpSettings.
        threads: each source frame is split into this many bands of rows rasterised in parallel, then merged; the
            result is identical to one thread's.
    Returns:
        colour (M, h, w, 3) in the images' dtype (integer images rounded half up; 0 in holes), depth (M, h, w)
        float32 (0 = hole), coverage (M, h, w) float32.
    """
    num_targets = T_dst_src.shape[0]
    ksrc, kdst = intrinsics_vector(K_src), intrinsics_vector(K_dst)
    rounding = 0.5 if np.issubdtype(images.dtype, np.integer) else 0.0
    colour = np.zeros((num_targets, out_h, out_w, 3), images.dtype)
    depth_out = np.zeros((num_targets, out_h, out_w), np.float32)
    coverage = np.zeros((num_targets, out_h, out_w), np.float32)
    quad_rows = depths.shape[1] - 1
    bands = max(1, min(int(threads), quad_rows))
    edges = [quad_rows * k // bands for k in range(bands + 1)]
    work = _band_arrays(bands, depths.shape[2], out_h, out_w)
    thresholds = kernel_thresholds(settings)
    target_index = np.asarray(target_index)
    for m in range(num_targets):
        rotation = np.ascontiguousarray(T_dst_src[m, :3, :3], dtype=np.float64)
        translation = np.ascontiguousarray(T_dst_src[m, :3, 3], dtype=np.float64)
        pose = (ksrc, kdst, rotation, translation)
        # band 0 accumulates the target in its own inverse depth and the outputs; later bands start empty for every
        # source frame and are merged into it in order, which keeps the serial walk's tie-breaking
        outputs = [(work[0].inverse_depth, colour[m], coverage[m])]
        outputs += [(band.inverse_depth, band.colour_of(images.dtype), band.conf) for band in work[1:]]
        work[0].inverse_depth.fill(0.0)
        for n in np.flatnonzero(target_index == m):
            _run_bands(
                _raster_skirts,
                [
                    (depths[n], *pose, *thresholds, settings.occlude_unseen, 1.0 + settings.unseen_depth_ratio)
                    + (band.column, band.skirt_rows, band.skirt, band.span, edges[k], edges[k + 1])
                    for k, band in enumerate(work)
                ],
            )
            for band in work[1:]:
                _merge_skirts(work[0].skirt, work[0].span, band.skirt, band.span)
            _run_bands(
                _splat_frame,
                [
                    (images[n], depths[n], reliability[n], *pose, *thresholds, *outputs[k])
                    + (band.rows, band.column, work[0].skirt, work[0].span, rounding, edges[k], edges[k + 1], k > 0)
                    for k, band in enumerate(work)
                ],
            )
            for k in range(1, bands):
                _merge_band(*outputs[0], *outputs[k])
        target_rows = [out_h * k // bands for k in range(bands + 1)]
        finish = (work[0].inverse_depth, coverage[m], depth_out[m], settings.edge_px)
        _run_bands(_finish_target, [(*finish, target_rows[k], target_rows[k + 1]) for k in range(bands)])
    return colour, depth_out, coverage
