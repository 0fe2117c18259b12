"""Compiled CPU kernel of the forward warp (numba, serial, nopython, cached on disk).

The source pixel grid is a triangle mesh: each 2x2 block of valid pixels gives two triangles whose corners are the
pixel centres lifted to 3D and projected into the target camera. Triangles are rasterised at target pixel centres
with a z-buffer on inverse depth (nearest wins; on exact ties the first triangle in row-major order, which the torch
path reproduces). Colour is interpolated with screen-space barycentric weights, depth perspective-correctly (1/z),
so a plane comes out exactly. A triangle is dropped when it spans a depth discontinuity that really opens in the
target (relative depth jump above `max_depth_ratio` and a parallax difference above `max_parallax_px`): that gap is
a disocclusion and stays a hole. The dropped triangles ("skirts") bound space the source never saw; with
`occlude_unseen`, surfaces of the same frame that land behind a skirt are not trusted either (they may be hidden by
that unseen space, such as a robot's far side). Use `model.geometry.forward_warp`, which validates inputs.
"""
from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING

import numba
import numpy as np

if TYPE_CHECKING:
    from model.geometry import WarpSettings

# Pixel centres exactly on a shared triangle edge must not fall through the cracks of float rounding.
_EDGE_EPS = 1e-9


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _project_points(depth, ksrc, kdst, rotation, translation, near, px, py, inv_z, zsrc):  # pragma: no cover - compiled
    """Lift every source pixel of depth (H, W) and project it into the target (flat arrays of H * W).

    zsrc = 0 marks a pixel without a usable point: invalid depth, or at/behind the target's near plane.
    """
    height, width = depth.shape
    gx, gy, gcx, gcy = kdst[0], kdst[1], kdst[2], kdst[3]
    # R @ (z * ray(u, v)) = z * (R[:, 0] * xn(u) + R[:, 1] * yn(v) + R[:, 2]): the column part is per u, the rest per v.
    column = np.empty((width, 3))
    for u in range(width):
        xn = (u - ksrc[2]) / ksrc[0]
        for k in range(3):
            column[u, k] = rotation[k, 0] * xn
    for v in range(height):
        yn = (v - ksrc[3]) / ksrc[1]
        row0 = rotation[0, 1] * yn + rotation[0, 2]
        row1 = rotation[1, 1] * yn + rotation[1, 2]
        row2 = rotation[2, 1] * yn + rotation[2, 2]
        for u in range(width):
            i = v * width + u
            z = np.float64(depth[v, u])
            zd = z * (column[u, 2] + row2) + translation[2]
            if not (z > 0.0 and z < np.inf and zd > near):  # also rejects NaN
                zsrc[i] = 0.0
                continue
            inv = 1.0 / zd
            px[i] = gx * (z * (column[u, 0] + row0) + translation[0]) * inv + gcx
            py[i] = gy * (z * (column[u, 1] + row1) + translation[1]) * inv + gcy
            inv_z[i] = inv
            zsrc[i] = z


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


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _raster_skirt(x0, y0, x1, y1, x2, y2, iz0, iz1, iz2, max_tri_px, skirt):  # pragma: no cover
    """skirt (h, w) = max(skirt, the triangle's interpolated inverse depth) at the pixel centres it covers."""
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
    for y in range(ymin, ymax + 1):
        for x in range(xmin, xmax + 1):
            w0 = ((x1 - x) * (y2 - y) - (y1 - y) * (x2 - x)) * inv
            w1 = ((x2 - x) * (y0 - y) - (y2 - y) * (x0 - x)) * inv
            w2 = 1.0 - w0 - w1
            if w0 >= -_EDGE_EPS and w1 >= -_EDGE_EPS and w2 >= -_EDGE_EPS:
                skirt[y, x] = max(skirt[y, x], w0 * iz0 + w1 * iz1 + w2 * iz2)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _raster_skirts(px, py, inv_z, zsrc, height, width, max_depth_ratio, parallax_scale, max_parallax_px, max_tri_px, skirt):  # pragma: no cover
    """Rasterise the discontinuity triangles ("skirts") of one frame into skirt (h, w), reset to 0 first.

    A skirt spans the space between a foreground edge and the background behind it, which the source camera never
    saw: something may stand there. A surface of the same frame that lands behind a skirt in the target may really
    be hidden by that unseen something (a robot's far side), so the caller does not trust it.
    """
    skirt.fill(0.0)
    for v in range(height - 1):
        for u in range(width - 1):
            ia = v * width + u
            ib = ia + 1
            ic = ia + width
            idd = ic + 1
            za, zb, zc, zd = zsrc[ia], zsrc[ib], zsrc[ic], zsrc[idd]
            zlo = min(min(za, zb), min(zc, zd))
            if zlo > 0.0 and max(max(za, zb), max(zc, zd)) <= zlo * (1.0 + max_depth_ratio):
                continue
            if _is_skirt(za, zb, zc, max_depth_ratio, parallax_scale, max_parallax_px):
                _raster_skirt(px[ia], py[ia], px[ib], py[ib], px[ic], py[ic], inv_z[ia], inv_z[ib], inv_z[ic], max_tri_px, skirt)
            if _is_skirt(zb, zd, zc, max_depth_ratio, parallax_scale, max_parallax_px):
                _raster_skirt(px[ib], py[ib], px[idd], py[idd], px[ic], py[ic], inv_z[ib], inv_z[idd], inv_z[ic], max_tri_px, skirt)


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
def _splat_frame(image, depth, ksrc, kdst, rotation, translation, max_depth_ratio, max_parallax_px, max_tri_px, near, occlude_unseen, izbuf, colour, conf, scratch, skirt, rounding):  # pragma: no cover
    """Rasterise one source frame (image (H, W, 3), depth (H, W)) into izbuf (h, w) float64, the inverse depth
    (0 = empty; perspective-correct interpolation is linear in 1/z, and larger means nearer),
    colour (h, w, 3) and conf (h, w) float32; scratch (4, H * W) and skirt (h, w) are float64 working memory.
    With occlude_unseen, a surface landing more than max_depth_ratio behind one of this frame's skirts is not
    written. `rounding` is 0.5 for
    unsigned integer colour (the store truncates, so this rounds half up; a convex mix of valid values stays in range) and 0
    for float colour.

    The grid is walked quad by quad, corners a = (v, u), b = (v, u+1), c = (v+1, u), d = (v+1, u+1), triangles
    abc then bdc sharing one bounding box; a pixel centre inside abc is not tested against bdc. The raster loop is
    inlined by hand: numba calls that pass many arrays per triangle cost more than the rasterisation itself.
    """
    height, width = depth.shape
    out_h, out_w = izbuf.shape
    px, py, inv_z, zsrc = scratch[0], scratch[1], scratch[2], scratch[3]
    _project_points(depth, ksrc, kdst, rotation, translation, near, px, py, inv_z, zsrc)
    parallax_scale = max(kdst[0], kdst[1]) * math.sqrt(translation[0] ** 2 + translation[1] ** 2 + translation[2] ** 2)
    # Twice a half-pixel triangle's area (the edge-function convention), in target pixels.
    inv_expected_area = (ksrc[0] * ksrc[1]) / (kdst[0] * kdst[1])
    if occlude_unseen:
        _raster_skirts(px, py, inv_z, zsrc, height, width, max_depth_ratio, parallax_scale, max_parallax_px, max_tri_px, skirt)
    else:
        skirt.fill(0.0)
    behind = 1.0 + max_depth_ratio
    for v in range(height - 1):
        for u in range(width - 1):
            ia = v * width + u
            ib = ia + 1
            ic = ia + width
            idd = ic + 1
            za, zb, zc, zd = zsrc[ia], zsrc[ib], zsrc[ic], zsrc[idd]
            zlo = min(min(za, zb), min(zc, zd))
            if zlo > 0.0 and max(max(za, zb), max(zc, zd)) <= zlo * (1.0 + max_depth_ratio):
                keep0 = keep1 = True  # the common case: four valid corners on one smooth surface
            else:
                keep0 = _keep_triangle(za, zb, zc, max_depth_ratio, parallax_scale, max_parallax_px)
                keep1 = _keep_triangle(zb, zd, zc, max_depth_ratio, parallax_scale, max_parallax_px)
                if not (keep0 or keep1):
                    continue
            xa, ya, xb, yb, xc, yc, xd, yd = px[ia], py[ia], px[ib], py[ib], px[ic], py[ic], px[idd], py[idd]
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
            inv1 = 1.0 / area1 if keep1 else 0.0
            conf0 = _confidence(area0, inv_expected_area) if keep0 else 0.0
            conf1 = _confidence(area1, inv_expected_area) if keep1 else 0.0
            iza, izb, izc, izd = inv_z[ia], inv_z[ib], inv_z[ic], inv_z[idd]
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
                            if iz > izbuf[y, x] and skirt[y, x] <= iz * behind:
                                izbuf[y, x] = iz
                                for ch in range(3):
                                    colour[y, x, ch] = w0 * image[v, u, ch] + w1 * image[v, u + 1, ch] + w2 * image[v + 1, u, ch] + rounding
                                conf[y, x] = conf0
                    if keep1 and not inside:
                        w0 = ((xd - x) * (yc - y) - (yd - y) * (xc - x)) * inv1
                        w1 = ((xc - x) * (yb - y) - (yc - y) * (xb - x)) * inv1
                        w2 = 1.0 - w0 - w1
                        if w0 >= -_EDGE_EPS and w1 >= -_EDGE_EPS and w2 >= -_EDGE_EPS:
                            iz = w0 * izb + w1 * izd + w2 * izc
                            if iz > izbuf[y, x] and skirt[y, x] <= iz * behind:
                                izbuf[y, x] = iz
                                for ch in range(3):
                                    colour[y, x, ch] = w0 * image[v, u + 1, ch] + w1 * image[v + 1, u + 1, ch] + w2 * image[v + 1, u, ch] + rounding
                                conf[y, x] = conf1


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _finish_target(izbuf, conf, depth_out, dist, edge_px):  # pragma: no cover
    """depth_out = 1 / izbuf where hit; conf *= min(d, edge_px) / edge_px with d the chessboard distance to the
    nearest hole (the image border is not a hole).

    Chessboard distance is separable: with h the distance to the nearest hole along each row (two 1-D passes into the
    int32 work array dist), d(y, x) = min over |k| < edge_px of max(|k|, h(y + k, x)), capped at edge_px.
    """
    height, width = izbuf.shape
    for y in range(height):
        run = edge_px
        for x in range(width):
            run = 0 if izbuf[y, x] == 0.0 else min(run + 1, edge_px)
            dist[y, x] = run
        run = edge_px
        for x in range(width - 1, -1, -1):
            run = 0 if izbuf[y, x] == 0.0 else min(run + 1, edge_px)
            dist[y, x] = min(dist[y, x], run)
    for y in range(height):
        for x in range(width):
            depth_out[y, x] = 1.0 / izbuf[y, x] if izbuf[y, x] > 0.0 else 0.0
            d = dist[y, x]
            for k in range(1, edge_px):
                if y - k >= 0:
                    d = min(d, max(k, dist[y - k, x]))
                if y + k < height:
                    d = min(d, max(k, dist[y + k, x]))
            conf[y, x] *= d / edge_px


def intrinsics_vector(K: np.ndarray) -> np.ndarray:
    """(fx, fy, cx, cy) of a validated (3, 3) K."""
    if K[0, 1] != 0.0:
        from model.geometry import GeometryError

        raise GeometryError(f"intrinsics with skew (K[0, 1] = {K[0, 1]}) are not supported by the warp; rectify the images first")
    return np.array([K[0, 0], K[1, 1], K[0, 2], K[1, 2]], dtype=np.float64)


# Per-thread work arrays, reused across calls: in this sandbox the first touch of freshly mapped memory costs more
# than the rasterisation itself, so only the returned arrays are allocated per call.
_WORKSPACE = threading.local()


def _work_arrays(num_source_pixels: int, out_h: int, out_w: int) -> tuple[np.ndarray, ...]:
    """(scratch (4, N) float64, inverse depth, skirt (h, w) float64, distance (h, w) int32) for this thread."""
    arrays = getattr(_WORKSPACE, "arrays", None)
    if arrays is None or arrays[0].shape[1] != num_source_pixels or arrays[1].shape != (out_h, out_w):
        arrays = (np.empty((4, num_source_pixels)), np.empty((out_h, out_w)), np.empty((out_h, out_w)), np.empty((out_h, out_w), np.int32))
        _WORKSPACE.arrays = arrays
    return arrays


def render_frames(
    images: np.ndarray,
    depths: np.ndarray,
    K_src: np.ndarray,
    K_dst: np.ndarray,
    T_dst_src: np.ndarray,
    out_h: int,
    out_w: int,
    target_index: np.ndarray,
    settings: WarpSettings,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rasterise N source frames into M target frames (inputs already validated by model.geometry).

    Args:
        images: (N, H, W, 3); depths: (N, H, W) float32 m; T_dst_src: (M, 4, 4).
        target_index: (N,) int, the target slot (and transform) each source frame renders into; a target's frames
            go in the given order, so on exactly equal depth the earlier one wins.
        settings: a model.geometry.WarpSettings.
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
    scratch, inverse_depth, skirt, dist = _work_arrays(depths.shape[1] * depths.shape[2], out_h, out_w)
    target_index = np.asarray(target_index)
    for m in range(num_targets):
        rotation = np.ascontiguousarray(T_dst_src[m, :3, :3], dtype=np.float64)
        translation = np.ascontiguousarray(T_dst_src[m, :3, 3], dtype=np.float64)
        inverse_depth.fill(0.0)
        for n in np.flatnonzero(target_index == m):
            _splat_frame(
                images[n], depths[n], ksrc, kdst, rotation, translation,
                settings.max_depth_ratio, settings.max_parallax_px, settings.max_triangle_px, settings.near_m, settings.occlude_unseen,
                inverse_depth, colour[m], coverage[m], scratch, skirt, rounding,
            )
        _finish_target(inverse_depth, coverage[m], depth_out[m], dist, settings.edge_px)
    return colour, depth_out, coverage
