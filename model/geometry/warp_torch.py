"""The forward warp on torch tensors (CPU or CUDA): the algorithm of `model.geometry.warp_numba`, vectorised.

Same mesh, same tests, same arithmetic order in float64, so it gives the CPU kernel's results (up to the last bit of
rounding on some devices). Where the serial kernel walks quads and updates a z-buffer, this path enumerates every
(triangle, pixel-centre) candidate of every quad's bounding box at once and resolves the z-buffer with two scatter
reductions: the largest inverse depth wins, and on exact ties the candidate the serial kernel would have met first
(frame, then quad in row-major order, then triangle abc before bdc). A frame's skirts (its dropped discontinuity
triangles) are rasterised first into a max-inverse-depth map that vetoes that frame's surfaces behind them.
Use `model.geometry.forward_warp(..., backend="torch")` for validated NumPy in and out, or `render_frames_torch`
with tensors already on the GPU.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from model.geometry.base import EDGE_EPS as _EDGE_EPS
from model.geometry.base import NOISE_SIGMAS, UNRELIABLE_COVERAGE, WarpSettings, intrinsics_vector


def _keep_triangle(
    z0: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor, ratio: float, parallax_scale: float, max_parallax_px: float
) -> torch.Tensor:
    """Per triangle: all corners have points and no depth discontinuity opens in the target (see warp_numba)."""
    valid = (z0 > 0) & (z1 > 0) & (z2 > 0)
    zlo = torch.minimum(z0, torch.minimum(z1, z2))
    zhi = torch.maximum(z0, torch.maximum(z1, z2))
    safe_lo = torch.where(valid, zlo, torch.ones_like(zlo))
    safe_hi = torch.where(valid, zhi, torch.ones_like(zhi))
    opens = (zhi > zlo * (1.0 + ratio)) & (parallax_scale * (1.0 / safe_lo - 1.0 / safe_hi) > max_parallax_px)
    return valid & ~opens


def _fits(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, max_px: float) -> torch.Tensor:
    return torch.maximum(a, torch.maximum(b, c)) - torch.minimum(a, torch.minimum(b, c)) <= max_px


def _pixels_in_boxes(lo_x, hi_x, lo_y, hi_y, out_h: int, out_w: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(owner, x, y): one row per pixel centre inside each box [lo, hi] (clipped to the image), owner = box index."""
    xmin = torch.ceil(lo_x - _EDGE_EPS).clamp(min=0).long()
    xmax = torch.floor(hi_x + _EDGE_EPS).clamp(max=out_w - 1).long()
    ymin = torch.ceil(lo_y - _EDGE_EPS).clamp(min=0).long()
    ymax = torch.floor(hi_y + _EDGE_EPS).clamp(max=out_h - 1).long()
    box_w = (xmax - xmin + 1).clamp(min=0)
    counts = box_w * (ymax - ymin + 1).clamp(min=0)
    owner = torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), counts)
    offset = torch.arange(owner.numel(), device=counts.device) - (torch.cumsum(counts, 0) - counts)[owner]
    x = xmin[owner] + offset % box_w[owner]
    y = ymin[owner] + torch.div(offset, box_w[owner], rounding_mode="floor")
    return owner, x, y


def _skirt_map(
    *triangles,
    ratio: float,
    parallax_scale: float,
    max_parallax_px: float,
    max_px: float,
    unseen_scale: float,
    out_h: int,
    out_w: int,
) -> torch.Tensor:
    """(h * w,) float64: the largest inverse depth of the frame's discontinuity triangles at each pixel centre, where
    it is at least the triangle's largest corner's divided by unseen_scale (see warp_numba._raster_skirt).

    Each of `triangles` is ((z0, z1, z2), (x0, x1, x2), (y0, y1, y2), (iz0, iz1, iz2)), per-triangle tensors.
    """
    skirt = torch.zeros(out_h * out_w, dtype=torch.float64, device=triangles[0][0][0].device)
    for (z0, z1, z2), (x0, x1, x2), (y0, y1, y2), (iz0, iz1, iz2) in triangles:
        valid = (z0 > 0) & (z1 > 0) & (z2 > 0)
        area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
        chosen = valid & ~_keep_triangle(z0, z1, z2, ratio, parallax_scale, max_parallax_px)
        chosen &= _fits(x0, x1, x2, max_px) & _fits(y0, y1, y2, max_px) & (area != 0)
        index = torch.nonzero(chosen).squeeze(1)
        if index.numel() == 0:
            continue
        lo_x = torch.minimum(x0, torch.minimum(x1, x2))[index]
        hi_x = torch.maximum(x0, torch.maximum(x1, x2))[index]
        lo_y = torch.minimum(y0, torch.minimum(y1, y2))[index]
        hi_y = torch.maximum(y0, torch.maximum(y1, y2))[index]
        owner, x, y = _pixels_in_boxes(lo_x, hi_x, lo_y, hi_y, out_h, out_w)
        t = index[owner]
        xf, yf = x.to(torch.float64), y.to(torch.float64)
        inv = 1.0 / area[t]
        w0 = ((x1[t] - xf) * (y2[t] - yf) - (y1[t] - yf) * (x2[t] - xf)) * inv
        w1 = ((x2[t] - xf) * (y0[t] - yf) - (y2[t] - yf) * (x0[t] - xf)) * inv
        w2 = 1.0 - w0 - w1
        inside = (w0 >= -_EDGE_EPS) & (w1 >= -_EDGE_EPS) & (w2 >= -_EDGE_EPS)
        iz = w0 * iz0[t] + w1 * iz1[t] + w2 * iz2[t]
        inside &= iz >= torch.maximum(iz0, torch.maximum(iz1, iz2))[t] / unseen_scale
        skirt.scatter_reduce_(0, (y * out_w + x)[inside], iz[inside], reduce="amax")
    return skirt


def _candidates(image, depth, reliability, ksrc, kdst, rotation, translation, settings, out_h, out_w):
    """All (pixel, inverse depth, colour, confidence, order-within-frame) candidates of one source frame."""
    height, width = depth.shape
    device = depth.device
    f64 = torch.float64
    z = depth.to(f64)
    u = torch.arange(width, device=device, dtype=f64)
    v = torch.arange(height, device=device, dtype=f64)
    xn = (u - ksrc[2]) / ksrc[0]
    yn = (v - ksrc[3]) / ksrc[1]
    column = rotation[:, 0][None, :] * xn[:, None]  # (W, 3)
    row = rotation[:, 1][None, :] * yn[:, None] + rotation[:, 2][None, :]  # (H, 3)
    zd = z * (column[None, :, 2] + row[:, None, 2]) + translation[2]
    valid = (z > 0) & (z < torch.inf) & (zd > settings.near_m)
    inv = torch.where(valid, 1.0 / torch.where(valid, zd, torch.ones_like(zd)), torch.zeros_like(zd))
    px = kdst[0] * (z * (column[None, :, 0] + row[:, None, 0]) + translation[0]) * inv + kdst[2]
    py = kdst[1] * (z * (column[None, :, 1] + row[:, None, 1]) + translation[1]) * inv + kdst[3]
    zsrc = torch.where(valid, z, torch.zeros_like(z))

    # Quad corners a = (v, u), b = (v, u+1), c = (v+1, u), d = (v+1, u+1); quads in row-major order.
    def corners(field: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (
            field[:-1, :-1].reshape(-1),
            field[:-1, 1:].reshape(-1),
            field[1:, :-1].reshape(-1),
            field[1:, 1:].reshape(-1),
        )

    za, zb, zc, zd_ = corners(zsrc)
    xa, xb, xc, xd = corners(px)
    ya, yb, yc, yd = corners(py)
    iza, izb, izc, izd = corners(inv)
    parallax_scale = float(max(kdst[0], kdst[1])) * float(torch.linalg.vector_norm(translation))
    ratio, max_px = settings.max_depth_ratio, float(settings.max_triangle_px)
    # a step within the depth noise is one surface however far the parallax opens it (as in warp_numba)
    max_parallax_px = max(settings.max_parallax_px, parallax_scale * NOISE_SIGMAS * settings.depth_noise_inv_m)
    keep0 = _keep_triangle(za, zb, zc, ratio, parallax_scale, max_parallax_px)
    keep0 &= _fits(xa, xb, xc, max_px) & _fits(ya, yb, yc, max_px)
    keep1 = _keep_triangle(zb, zd_, zc, ratio, parallax_scale, max_parallax_px)
    keep1 &= _fits(xb, xd, xc, max_px) & _fits(yb, yd, yc, max_px)

    # Bounding box of the kept triangles (b and c belong to both).
    inf = torch.full_like(xa, torch.inf)
    lo_x = torch.minimum(torch.minimum(xb, xc), torch.minimum(torch.where(keep0, xa, inf), torch.where(keep1, xd, inf)))
    hi_x = torch.maximum(
        torch.maximum(xb, xc), torch.maximum(torch.where(keep0, xa, -inf), torch.where(keep1, xd, -inf))
    )
    lo_y = torch.minimum(torch.minimum(yb, yc), torch.minimum(torch.where(keep0, ya, inf), torch.where(keep1, yd, inf)))
    hi_y = torch.maximum(
        torch.maximum(yb, yc), torch.maximum(torch.where(keep0, ya, -inf), torch.where(keep1, yd, -inf))
    )
    area0 = (xb - xa) * (yc - ya) - (yb - ya) * (xc - xa)
    area1 = (xd - xb) * (yc - yb) - (yd - yb) * (xc - xb)
    keep0 &= area0 != 0
    keep1 &= area1 != 0
    quads = torch.nonzero(keep0 | keep1).squeeze(1)
    owner, x, y = _pixels_in_boxes(lo_x[quads], hi_x[quads], lo_y[quads], hi_y[quads], out_h, out_w)
    q = quads[owner]
    xf, yf = x.to(f64), y.to(f64)

    inv0 = torch.where(keep0, 1.0 / torch.where(keep0, area0, torch.ones_like(area0)), torch.zeros_like(area0))[q]
    inv1 = torch.where(keep1, 1.0 / torch.where(keep1, area1, torch.ones_like(area1)), torch.zeros_like(area1))[q]
    qxa, qya, qxb, qyb, qxc, qyc, qxd, qyd = xa[q], ya[q], xb[q], yb[q], xc[q], yc[q], xd[q], yd[q]
    a0 = ((qxb - xf) * (qyc - yf) - (qyb - yf) * (qxc - xf)) * inv0
    a1 = ((qxc - xf) * (qya - yf) - (qyc - yf) * (qxa - xf)) * inv0
    a2 = 1.0 - a0 - a1
    inside0 = keep0[q] & (a0 >= -_EDGE_EPS) & (a1 >= -_EDGE_EPS) & (a2 >= -_EDGE_EPS)
    b0 = ((qxd - xf) * (qyc - yf) - (qyd - yf) * (qxc - xf)) * inv1
    b1 = ((qxc - xf) * (qyb - yf) - (qyc - yf) * (qxb - xf)) * inv1
    b2 = 1.0 - b0 - b1
    inside1 = keep1[q] & ~inside0 & (b0 >= -_EDGE_EPS) & (b1 >= -_EDGE_EPS) & (b2 >= -_EDGE_EPS)

    rgb = image.to(f64).reshape(height, width, 3)
    colours = (
        rgb[:-1, :-1].reshape(-1, 3),
        rgb[:-1, 1:].reshape(-1, 3),
        rgb[1:, :-1].reshape(-1, 3),
        rgb[1:, 1:].reshape(-1, 3),
    )
    trust = corners(reliability.to(f64))
    inv_expected_area = (ksrc[0] * ksrc[1]) / (kdst[0] * kdst[1])

    def confidence(area: torch.Tensor) -> torch.Tensor:
        magnification = area.abs() * inv_expected_area
        return torch.where(magnification <= 1.0, torch.ones_like(magnification), 1.0 / torch.sqrt(magnification))

    if settings.occlude_unseen:
        skirt = _skirt_map(
            ((za, zb, zc), (xa, xb, xc), (ya, yb, yc), (iza, izb, izc)),
            ((zb, zd_, zc), (xb, xd, xc), (yb, yd, yc), (izb, izd, izc)),
            ratio=ratio,
            parallax_scale=parallax_scale,
            max_parallax_px=max_parallax_px,
            max_px=max_px,
            unseen_scale=1.0 + settings.unseen_depth_ratio,
            out_h=out_h,
            out_w=out_w,
        )
    else:
        skirt = torch.zeros(out_h * out_w, dtype=f64, device=device)
    behind = 1.0 + ratio
    pieces = []
    for inside, weights, (i0, i1, i2), inv_z, area, half in (
        (inside0, (a0, a1, a2), (0, 1, 2), (iza, izb, izc), area0, 0),
        (inside1, (b0, b1, b2), (1, 3, 2), (izb, izd, izc), area1, 1),
    ):
        sel = torch.nonzero(inside).squeeze(1)
        qs = q[sel]
        w0, w1, w2 = weights[0][sel], weights[1][sel], weights[2][sel]
        iz = w0 * inv_z[0][qs] + w1 * inv_z[1][qs] + w2 * inv_z[2][qs]
        trusted = skirt[y[sel] * out_w + x[sel]] <= iz * behind  # not behind this frame's unseen volume
        sel, qs, w0, w1, w2, iz = sel[trusted], qs[trusted], w0[trusted], w1[trusted], w2[trusted], iz[trusted]
        colour = w0[:, None] * colours[i0][qs] + w1[:, None] * colours[i1][qs] + w2[:, None] * colours[i2][qs]
        pixel = y[sel] * out_w + x[sel]
        reliable = w0 * trust[i0][qs] + w1 * trust[i1][qs] + w2 * trust[i2][qs] >= 0.5
        conf = confidence(area[qs])
        conf = torch.where(reliable, conf, conf * UNRELIABLE_COVERAGE)
        pieces.append((pixel, iz, colour, conf, qs * 2 + half))
    return [torch.cat(parts) for parts in zip(*pieces)], 2 * (height - 1) * (width - 1)


def _edge_ramp(hit: torch.Tensor, conf: torch.Tensor, edge_px: int) -> torch.Tensor:
    """conf (M, h, w) times min(d, edge_px) / edge_px, d = chessboard distance to the nearest hole."""
    hole = (~hit).to(torch.float32)[:, None]
    dist = torch.full(hit.shape, float(edge_px), dtype=torch.float64, device=hit.device)
    for k in range(edge_px - 1, 0, -1):
        near_hole = F.max_pool2d(hole, kernel_size=2 * k + 1, stride=1, padding=k)[:, 0] > 0
        dist[near_hole] = float(k)
    dist[~hit] = 0.0
    return (conf.to(torch.float64) * (dist / edge_px)).to(torch.float32)


@torch.no_grad()
def render_frames_torch(
    images: torch.Tensor,
    depths: torch.Tensor,
    reliability: torch.Tensor,
    K_src: np.ndarray,
    K_dst: np.ndarray,
    T_dst_src: np.ndarray,
    out_h: int,
    out_w: int,
    target_index: np.ndarray,
    settings: WarpSettings,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tensor form of `model.geometry.warp_numba.render_frames`; everything stays on `images.device`.

    Args:
        images: (N, H, W, 3) any numeric dtype; depths: (N, H, W) metres (0/NaN/inf invalid); reliability: (N, H, W)
        in [0, 1] (see warp_numba.render_frames);
        K_src, K_dst: (3, 3); T_dst_src: (M, 4, 4); target_index: (N,) target slot of each source frame;
        settings: a model.geometry.WarpSettings.
    Returns:
        colour (M, h, w, 3) in the images' dtype (integers rounded half up), depth (M, h, w) float32 (0 = hole),
        coverage (M, h, w) float32.
    """
    device = images.device
    num_targets = int(np.shape(T_dst_src)[0])
    ksrc = torch.as_tensor(intrinsics_vector(np.asarray(K_src, dtype=np.float64)), device=device)
    kdst = torch.as_tensor(intrinsics_vector(np.asarray(K_dst, dtype=np.float64)), device=device)
    transforms = torch.as_tensor(np.asarray(T_dst_src, dtype=np.float64), device=device)
    pixels, inverse_depths, colours, confidences, orders = [], [], [], [], []
    for n in range(images.shape[0]):
        m = int(target_index[n])
        (pixel, iz, colour, conf, order), per_frame = _candidates(
            images[n],
            depths[n],
            reliability[n],
            ksrc,
            kdst,
            transforms[m, :3, :3],
            transforms[m, :3, 3],
            settings,
            out_h,
            out_w,
        )
        pixels.append(pixel + m * out_h * out_w)
        inverse_depths.append(iz)
        colours.append(colour)
        confidences.append(conf)
        orders.append(order + n * per_frame)
    pixel, iz, colour, conf, order = (torch.cat(x) for x in (pixels, inverse_depths, colours, confidences, orders))

    size = num_targets * out_h * out_w
    best = torch.zeros(size, dtype=torch.float64, device=device).scatter_reduce(0, pixel, iz, reduce="amax")
    tied = iz == best[pixel]
    first = torch.full((size,), torch.iinfo(torch.int64).max, dtype=torch.int64, device=device)
    first = first.scatter_reduce(0, pixel[tied], order[tied], reduce="amin")
    win = tied & (order == first[pixel])
    colour_out = torch.zeros(size, 3, dtype=images.dtype, device=device)
    conf_out = torch.zeros(size, dtype=torch.float32, device=device)
    winners = colour[win]
    if not (images.dtype.is_floating_point or images.dtype.is_complex):
        winners = torch.floor(winners + 0.5)  # rounded half up, as the CPU kernel stores integer images
    colour_out[pixel[win]] = winners.to(images.dtype)
    conf_out[pixel[win]] = conf[win].to(torch.float32)
    hit = best > 0
    depth_out = torch.where(hit, 1.0 / torch.where(hit, best, torch.ones_like(best)), torch.zeros_like(best)).to(
        torch.float32
    )
    shape = (num_targets, out_h, out_w)
    coverage = _edge_ramp(hit.reshape(shape), conf_out.reshape(shape), settings.edge_px)
    return colour_out.reshape(*shape, 3), depth_out.reshape(shape), coverage


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
    device: str | torch.device | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NumPy in and out, like `model.geometry.warp_numba.render_frames`; computes on `device` (default: CUDA if
    available)."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    colour, depth, coverage = render_frames_torch(
        torch.as_tensor(np.ascontiguousarray(images), device=device),
        torch.as_tensor(np.ascontiguousarray(depths), device=device),
        torch.as_tensor(np.ascontiguousarray(reliability), device=device),
        K_src,
        K_dst,
        T_dst_src,
        out_h,
        out_w,
        target_index,
        settings,
    )
    return colour.cpu().numpy(), depth.cpu().numpy(), coverage.cpu().numpy()
