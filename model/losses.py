"""Differentiable image losses for training in pixel space.

`ssim_map` follows the evaluator's SSIM (offline_training.metrics.ssim_map: Gaussian 11x11 window, sigma 1.5, per
channel, population statistics, channel mean) so that a pixel loss optimises what `embody4d eval` reports.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

_C1, _C2 = 0.01**2, 0.03**2  # SSIM's stabilisers for a data range of 1


def _gaussian_window(sigma: float, radius: int, channels: int, like: torch.Tensor) -> torch.Tensor:
    x = torch.arange(-radius, radius + 1, dtype=like.dtype, device=like.device)
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, -1, -1).contiguous()


def ssim_map(pred: torch.Tensor, truth: torch.Tensor, sigma: float = 1.5, radius: int = 5) -> torch.Tensor:
    """Per-pixel SSIM (N, H, W), averaged over channels, of images (N, C, H, W) in [-1, 1]. Borders are reflected."""
    if pred.shape != truth.shape or pred.ndim != 4:
        raise ValueError(f"pred and truth must be (N, C, H, W) of one shape, got {tuple(pred.shape)} and {tuple(truth.shape)}")
    # to [0, 1] as the evaluator's [0, 255]: SSIM's luminance term is not invariant to shifting the values
    pred, truth = (pred + 1) / 2, (truth + 1) / 2
    channels = pred.shape[1]
    window = _gaussian_window(sigma, radius, channels, pred)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, [radius] * 4, mode="reflect"), window, groups=channels)

    mu_p, mu_t = blur(pred), blur(truth)
    var_p = blur(pred * pred) - mu_p**2
    var_t = blur(truth * truth) - mu_t**2
    cov = blur(pred * truth) - mu_p * mu_t
    value = (2 * mu_p * mu_t + _C1) * (2 * cov + _C2) / ((mu_p**2 + mu_t**2 + _C1) * (var_p + var_t + _C2))
    return value.mean(1)


def hole_image_loss(generated: torch.Tensor, kept: torch.Tensor, keep_mask: torch.Tensor,
                    truth: torch.Tensor) -> torch.Tensor:
    """L1 + (1 - SSIM) of the output as the engines compose it: `kept` pixels where keep_mask, `generated` elsewhere.

    generated, kept, truth: videos (B, 3, T, H, W) in [-1, 1]; keep_mask (B, 1, T, H, W) bool. Only the generated
    pixels carry gradient; the SSIM windows see the seams between them and the kept pixels, as the metric does.
    """
    composed = torch.where(keep_mask, kept, generated)
    frames = composed.transpose(1, 2).flatten(0, 1), truth.transpose(1, 2).flatten(0, 1)  # (B T, 3, H, W)
    return (composed - truth).abs().mean() + (1 - ssim_map(*frames)).mean()
