"""Metric scale for monocular depth: the estimate's unknown scale and shift, fitted in inverse depth against a few
metric anchors.

A monocular estimator's depth is right up to an affine map of inverse depth (relative estimators such as Depth
Anything are trained affine-invariant in disparity; metric ones are off in scale by a few percent; the sensor model
is `model.depth_sensor.MonoEstimate`):

    1 / z_true = a / z_est + b

A robot setup always has metric depth somewhere in the picture: the robot itself, drawn from its URDF, the joint
states and the hand-eye calibration (the robot layer renders it for every frame, `RobotLayer.source_depth`). Those
pixels are the anchors: (a, b) is the least-squares fit of the anchors' inverse depth on the estimate's, starting
from a least-median line that tolerates up to half of the anchors being wrong, with anchors that disagree by more
than `outlier_sigmas` robust standard deviations (something in front of the robot: a held object, a person) left
out.

Over a narrow range of anchor depths scale and shift cannot be told apart: an estimator's error is smooth (a few
percent, correlated over tens of pixels), so across a robot that spans +-10 % in inverse depth a 2 % error tilts
the fitted line by some 20 % and the shift extrapolates badly to the background (measured on the held-out set:
median depth error 1.4 % -> 8 % on one sample). The shift is therefore fitted only when the anchors' inverse
depths spread by at least `min_relative_spread` (25 %: anchors from about 0.5 to 1.5 m, as on a table plane);
otherwise only the scale (b = 0), the better-determined term.

    fit = fit_inverse_depth_affine(estimate, anchor_depth)   # anchor_depth: metres, 0 where no anchor
    aligned = fit.apply(estimate)

`StreamAlignment` does this per frame of a stream, smoothing the fit over time and keeping the last one for frames
without anchors (the node's image mode).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


class DepthAlignmentError(ValueError):
    """Too few usable anchors to fit the scale; the message says how many there were."""


@dataclass(frozen=True)
class InverseDepthAffine:
    """1/z_true = scale / z_est + shift_inv_m, fitted on `anchors` pixels with RMS residual `rms_inv_m` (1/m)."""

    scale: float
    shift_inv_m: float
    anchors: int = 0
    rms_inv_m: float = 0.0

    def apply(self, depth: np.ndarray) -> np.ndarray:
        """Aligned depth (any shape) float32 metres; invalid input (0, NaN, inf) and inverse depths <= 1e-3 /m
        (over 1 km, or behind the camera after a negative shift) become 0 (invalid)."""
        depth = np.asarray(depth, np.float32)
        inverse = np.divide(np.float32(self.scale), depth, out=np.zeros_like(depth), where=depth > 0)
        inverse += np.float32(self.shift_inv_m)  # inf depth: inverse 0 + shift, so only with a positive shift valid
        valid = (inverse > 1e-3) & (depth > 0) & np.isfinite(depth)
        return np.divide(np.float32(1.0), inverse, out=np.zeros_like(depth), where=valid)


def _least_squares_line(x: np.ndarray, y: np.ndarray, with_shift: bool) -> tuple[float, float]:
    """(scale, shift) minimising sum (y - scale x - shift)^2, with shift = 0 unless `with_shift`."""
    if not with_shift:
        return float(x @ y / (x @ x)), 0.0
    dx = x - x.mean()
    scale = float(dx @ (y - y.mean()) / (dx @ dx))
    return scale, float(y.mean() - scale * x.mean())


def _least_median_line(x: np.ndarray, y: np.ndarray, with_shift: bool, hypotheses: int = 64) -> tuple[float, float]:
    """A starting (scale, shift) that up to half of the anchors may contradict: of lines through random anchor pairs
    (through the origin and one anchor without shift), the one with the least median absolute residual."""
    rng = np.random.default_rng(0)  # deterministic: the same frame always gets the same fit
    pick = rng.integers(x.size, size=(hypotheses, 2))
    if with_shift:
        dx = x[pick[:, 0]] - x[pick[:, 1]]
        pick = pick[np.abs(dx) > 1e-6 * x.mean()]
        scale = (y[pick[:, 0]] - y[pick[:, 1]]) / (x[pick[:, 0]] - x[pick[:, 1]])
        shift = y[pick[:, 0]] - scale * x[pick[:, 0]]
    else:
        scale, shift = y[pick[:, 0]] / x[pick[:, 0]], np.zeros(len(pick))
    if not len(scale):  # every pair at the same inverse depth
        return float(np.median(y / x)), 0.0
    probe = rng.choice(x.size, min(x.size, 512), replace=False)
    residual = np.abs(y[probe][None] - scale[:, None] * x[probe][None] - shift[:, None])
    best = int(np.argmin(np.median(residual, axis=1)))
    return float(scale[best]), float(shift[best])


def fit_inverse_depth_affine(
    estimate: np.ndarray,
    anchor_depth: np.ndarray,
    min_anchors: int = 32,
    min_relative_spread: float = 0.25,
    outlier_sigmas: float = 3.0,
    iterations: int = 3,
    max_anchors: int = 8192,
) -> InverseDepthAffine:
    """Fit (a, b) of 1/z_anchor = a / z_est + b on the pixels where both are valid.

    Args:
        estimate: depth of the estimator (any shape, metres; a clip fits one (a, b) for all its frames).
        anchor_depth: metric depth of the same shape, 0 (or NaN) where there is no anchor.
        min_anchors: fewer usable anchors raise DepthAlignmentError.
        min_relative_spread: when the anchors' inverse depths (of the estimate) vary by less than this (standard
            deviation over mean), only the scale is fitted.
        outlier_sigmas: anchors whose residual exceeds this many robust standard deviations (1.4826 times the median
            absolute residual) are left out of the next fit.
        iterations: least-squares fits, each on the previous fit's inliers (the first on those of a least-median
            line, so that up to half of the anchors may be wrong).
        max_anchors: more usable anchors than this are thinned to an evenly spread subset of this many.
    """
    estimate, anchor_depth = np.asarray(estimate), np.asarray(anchor_depth)
    if estimate.shape != anchor_depth.shape:
        raise DepthAlignmentError(f"estimate {estimate.shape} and anchors {anchor_depth.shape} differ in shape")
    # NaN fails "> 0" and inf gives an inverse of 0, which fails it after the division: no full-image float64 copies
    usable = (estimate > 0) & (anchor_depth > 0)
    x, y = 1.0 / estimate[usable].astype(np.float64), 1.0 / anchor_depth[usable].astype(np.float64)
    finite = (x > 0) & (y > 0)
    x, y = x[finite], y[finite]
    if x.size < min_anchors:
        raise DepthAlignmentError(f"{x.size} usable anchor pixels, at least {min_anchors} are needed")
    if x.size > max_anchors:  # an evenly spread subset fits as well and keeps a frame's fit to a few milliseconds
        every = np.linspace(0, x.size - 1, max_anchors).astype(np.int64)
        x, y = x[every], y[every]
    with_shift = bool(x.std() >= min_relative_spread * x.mean())
    scale, shift = _least_median_line(x, y, with_shift)
    keep = np.ones(x.size, bool)
    for _ in range(max(1, iterations)):
        residual = y - (scale * x + shift)
        sigma = 1.4826 * np.median(np.abs(residual[keep]))
        # the floor (0.01 % of the inverse depth) keeps float rounding of an exact fit from counting as outliers
        inliers = np.abs(residual) <= outlier_sigmas * max(sigma, 1e-4 * y.mean())
        if inliers.sum() < min_anchors:
            break
        keep = inliers
        scale, shift = _least_squares_line(x[keep], y[keep], with_shift)
    rms = float(np.sqrt(np.mean((y[keep] - (scale * x[keep] + shift)) ** 2)))
    return InverseDepthAffine(float(scale), float(shift), int(keep.sum()), rms)


def interior_anchors(anchor_depth: np.ndarray, margin_px: int = 2) -> np.ndarray:
    """Anchor depth (H, W) or (T, H, W) with the pixels within `margin_px` of the anchor region's border set to 0:
    at the robot's silhouette the estimate blurs robot and background together (soft edges), and a hand-eye error
    of a pixel or two puts background under the rendered robot."""
    anchor_depth = np.asarray(anchor_depth, np.float32)
    if margin_px <= 0:
        return anchor_depth
    kernel = np.ones((2 * margin_px + 1, 2 * margin_px + 1), np.uint8)
    frames = anchor_depth.reshape(-1, *anchor_depth.shape[-2:])
    inside = np.stack([cv2.erode((f > 0).astype(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE) for f in frames])
    return np.where(inside.reshape(anchor_depth.shape) > 0, anchor_depth, np.float32(0.0))


class StreamAlignment:
    """Alignment of a monocular depth stream: `update` fits a frame against its anchors and blends the fit into the
    running one with weight `1 - smoothing` (the estimator's scale drifts slowly; a fit of its own per frame would
    make the view breathe); `apply` scales depth with the running fit, which frames without enough anchors keep.

    Args:
        smoothing: share of the running fit kept at each new fit (0: every frame its own fit).
        min_anchors: see `fit_inverse_depth_affine`.
    """

    def __init__(self, smoothing: float = 0.8, min_anchors: int = 32) -> None:
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        self.smoothing, self.min_anchors = smoothing, min_anchors
        self.fit: InverseDepthAffine | None = None

    def update(self, estimate: np.ndarray, anchor_depth: np.ndarray | None) -> bool:
        """Fit one frame's estimate (H, W) to its anchors (H, W; None or too few: no change); returns whether a fit
        was made."""
        if anchor_depth is None:
            return False
        try:
            new = fit_inverse_depth_affine(estimate, interior_anchors(anchor_depth), self.min_anchors)
        except DepthAlignmentError:
            return False
        old, keep = self.fit, self.smoothing
        if old is not None:
            new = InverseDepthAffine(
                keep * old.scale + (1 - keep) * new.scale,
                keep * old.shift_inv_m + (1 - keep) * new.shift_inv_m,
                new.anchors,
                new.rms_inv_m,
            )
        self.fit = new
        return True

    def apply(self, estimate: np.ndarray) -> np.ndarray | None:
        """The estimate (any shape) scaled by the running fit; None before the first fit."""
        return None if self.fit is None else self.fit.apply(estimate)
