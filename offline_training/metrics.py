"""Image and video metrics of `embody4d eval` on uint8 RGB clips (T, H, W, 3) against ground truth.

PSNR and SSIM take an optional pixel region (T, H, W) bool: PSNR is computed from the mean squared error over the
region's pixels (all channels), SSIM averages the per-pixel SSIM map (skimage, Gaussian window, per channel) over the
region. An empty region gives NaN; identical images give PSNR = inf and SSIM = 1.

Temporal flicker compares frame-to-frame change with the ground truth's: mean |(p_t - p_{t-1}) - (g_t - g_{t-1})| in
grey levels (0 = the clip changes exactly as the truth does), so static noise costs nothing and popping does.

LPIPS needs the `lpips` package and its backbone weights on disk (nothing is downloaded); `load_lpips` says why it
is unavailable otherwise, and the evaluator reports the column as skipped with that note.

`visible_in_source` is the ground truth for the warp's coverage: the target pixels a perfect warp could fill.

`silhouette_iou` compares where a view draws the robot with where the simulator's robot is (intersection over union
of two masks, pooled over all frames).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from skimage.metrics import structural_similarity

from model.geometry import check_intrinsics, check_rigid


def _check(pred: np.ndarray, truth: np.ndarray, region: np.ndarray | None) -> None:
    if pred.shape != truth.shape or pred.dtype != np.uint8 or truth.dtype != np.uint8 or pred.shape[-1] != 3:
        raise ValueError(
            f"pred and truth must be uint8 (..., H, W, 3) of one shape, got {pred.shape} {pred.dtype} "
            f"and {truth.shape} {truth.dtype}"
        )
    if region is not None and region.shape != pred.shape[:-1]:
        raise ValueError(f"region must be {pred.shape[:-1]}, got {region.shape}")


def psnr(pred: np.ndarray, truth: np.ndarray, region: np.ndarray | None = None) -> float:
    """PSNR in dB (peak 255) over `region` (default: everything); inf when equal there, NaN for an empty region."""
    _check(pred, truth, region)
    error = (pred.astype(np.float64) - truth.astype(np.float64)) ** 2
    if region is not None:
        if not region.any():
            return float("nan")
        error = error[region]
    mse = float(error.mean())
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def ssim_map(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM (T, H, W) of clips (T, H, W, 3), averaged over channels (Gaussian 11x11 window, sigma 1.5)."""
    _check(pred, truth, None)
    maps = [
        structural_similarity(
            p,
            g,
            channel_axis=-1,
            data_range=255,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            full=True,
        )[1].mean(-1)
        for p, g in zip(pred, truth)
    ]
    return np.stack(maps)


def ssim(
    pred: np.ndarray, truth: np.ndarray, region: np.ndarray | None = None, precomputed: np.ndarray | None = None
) -> float:
    """Mean SSIM over `region` (default: everything); NaN for an empty region. `precomputed`: ssim_map(pred, truth)."""
    _check(pred, truth, region)
    values = ssim_map(pred, truth) if precomputed is None else precomputed
    if region is not None:
        if not region.any():
            return float("nan")
        values = values[region]
    return float(values.mean())


def flicker(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean |Δpred - Δtruth| over consecutive frames, grey levels; NaN for a single frame."""
    _check(pred, truth, None)
    if len(pred) < 2:
        return float("nan")
    dp = np.diff(pred.astype(np.float32), axis=0)
    dg = np.diff(truth.astype(np.float32), axis=0)
    return float(np.abs(dp - dg).mean())


def load_lpips(weights_dir: str | Path | None = None) -> tuple[Callable[[np.ndarray, np.ndarray], float] | None, str]:
    """(lpips(pred, truth) -> mean distance over frames, "") when the `lpips` package and its AlexNet backbone are on
    disk (torch hub cache or `weights_dir`), else (None, why not). Never downloads."""
    try:
        import lpips
        import torch
        import torchvision  # noqa: F401  (lpips' AlexNet backbone comes from it)
    except ImportError as exc:
        return None, (
            f"LPIPS skipped: {exc.name} is not installed (pip install lpips torchvision, then put the "
            "AlexNet weights in the torch hub cache)"
        )
    hub = Path(weights_dir) if weights_dir else Path(torch.hub.get_dir()) / "checkpoints"
    if not list(hub.glob("alexnet-owt-*.pth")):
        return None, f"LPIPS skipped: no AlexNet weights (alexnet-owt-*.pth) in {hub}; they cannot be downloaded here"
    model = lpips.LPIPS(net="alex", verbose=False).eval()

    def distance(pred: np.ndarray, truth: np.ndarray) -> float:
        def tensor(x: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(x).permute(0, 3, 1, 2).float() / 127.5 - 1

        with torch.no_grad():
            return float(model(tensor(pred), tensor(truth)).mean())

    return distance, ""


def visible_in_source(
    depth_dst: np.ndarray,
    depth_src: np.ndarray,
    K_dst: np.ndarray,
    K_src: np.ndarray,
    T_src_dst: np.ndarray,
    rel_tol: float = 0.02,
) -> np.ndarray:
    """Ground-truth visibility for evaluation: which target pixels show a surface the source camera also sees.

    Each target pixel with known depth is lifted to 3D, moved into the source camera and kept if it lands inside the
    source image where the source's depth agrees within `rel_tol` (not occluded). This is the coverage a perfect
    warp could reach.

    Args:
        depth_dst: (h, w) true target depth, metres; depth_src: (H, W) source depth, metres (0/NaN/inf invalid).
        K_dst, K_src: (3, 3). T_src_dst: (4, 4) maps target optical points into the source optical frame.
    Returns:
        (h, w) bool.
    """
    inside, us, vs, z = _in_source(depth_dst, depth_src.shape, K_dst, K_src, T_src_dst)
    depth_src = np.where(np.isfinite(depth_src), depth_src, 0.0)
    seen = np.zeros(inside.shape, bool)
    measured = depth_src[vs[inside], us[inside]]
    seen[inside] = (measured > 0) & (np.abs(measured - z[inside]) <= rel_tol * z[inside])
    return seen.reshape(depth_dst.shape)


def hidden_by_robot(
    depth_dst: np.ndarray,
    depth_src: np.ndarray,
    robot_src: np.ndarray,
    K_dst: np.ndarray,
    K_src: np.ndarray,
    T_src_dst: np.ndarray,
    rel_tol: float = 0.02,
) -> np.ndarray:
    """Target pixels whose surface the source camera would see but for the robot: it lands inside the source image
    on a robot pixel (``robot_src`` (H, W) bool) that is nearer than the surface by more than ``rel_tol``. What a
    static-scene memory can fill there comes only from frames where the robot was elsewhere. Arguments as
    :func:`visible_in_source`; returns (h, w) bool."""
    inside, us, vs, z = _in_source(depth_dst, depth_src.shape, K_dst, K_src, T_src_dst)
    depth_src = np.where(np.isfinite(depth_src), depth_src, 0.0)
    hidden = np.zeros(inside.shape, bool)
    measured = depth_src[vs[inside], us[inside]]
    on_robot = np.asarray(robot_src, bool)[vs[inside], us[inside]]
    hidden[inside] = on_robot & (measured > 0) & (measured < (1 - rel_tol) * z[inside])
    return hidden.reshape(depth_dst.shape)


def _in_source(
    depth_dst: np.ndarray, src_hw: tuple[int, ...], K_dst: np.ndarray, K_src: np.ndarray, T_src_dst: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each target pixel's surface (true depth ``depth_dst``) moved into the source camera: (inside (h*w,) bool: in
    front of it and inside its image, source pixel columns and rows (h*w,) int (valid where inside), depth z)."""
    K_dst, K_src, T_src_dst = (
        check_intrinsics(K_dst, "K_dst"),
        check_intrinsics(K_src, "K_src"),
        check_rigid(T_src_dst, "T_src_dst"),
    )
    depth_dst = np.where(np.isfinite(depth_dst), depth_dst, 0.0)
    h, w = depth_dst.shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    rays = np.linalg.solve(K_dst, np.stack([u.ravel(), v.ravel(), np.ones(h * w)]))
    points = T_src_dst[:3, :3] @ (rays * depth_dst.ravel()) + T_src_dst[:3, 3:4]
    z = points[2]
    in_front = (depth_dst.ravel() > 0) & (z > 0)
    pixels = K_src @ points
    with np.errstate(divide="ignore", invalid="ignore"):
        us = np.rint(pixels[0] / z)
        vs = np.rint(pixels[1] / z)
    height, width = src_hw
    inside = in_front & (us >= 0) & (us < width) & (vs >= 0) & (vs < height)
    return inside, np.where(inside, us, 0).astype(int), np.where(inside, vs, 0).astype(int), z


# a warped surface this much nearer than the true one is foreground on background; colour this far off is visible
GHOST_DEPTH_RATIO = 0.05
GHOST_GREY_LEVELS = 25.0


def ghosting(
    pred: np.ndarray, truth: np.ndarray, warped: np.ndarray, warped_depth: np.ndarray, truth_depth: np.ndarray
) -> float:
    """Foreground colour on background pixels, in % of all pixels (lower is better).

    A pixel counts where the warp put a surface more than GHOST_DEPTH_RATIO nearer than the true one (warped_depth <
    0.95 truth_depth: foreground landed on background) and the output shows it: its colour is off the truth by more
    than GHOST_GREY_LEVELS (mean absolute over channels) and closer to the warped colour than to the truth. Holes the
    method repaired with background colour do not count.

    Args:
        pred, truth, warped: (T, H, W, 3) uint8; warped_depth, truth_depth: (T, H, W) metres, 0 = none.
    """
    _check(pred, truth, None)
    pred, truth, warped = (a.astype(np.float32) for a in (pred, truth, warped))
    in_front = (warped_depth > 0) & (truth_depth > 0) & (warped_depth < (1.0 - GHOST_DEPTH_RATIO) * truth_depth)
    off_truth = np.abs(pred - truth).mean(-1)
    like_warp = np.abs(pred - warped).mean(-1) < off_truth
    return float(100.0 * (in_front & like_warp & (off_truth > GHOST_GREY_LEVELS)).mean())


def silhouette_iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two masks (..., H, W) bool of one shape, pooled over all their pixels (a clip's
    frames together); NaN when both are empty."""
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    if pred.shape != truth.shape:
        raise ValueError(f"masks must have one shape, got {pred.shape} and {truth.shape}")
    union = int(np.count_nonzero(pred | truth))
    return float("nan") if union == 0 else int(np.count_nonzero(pred & truth)) / union
