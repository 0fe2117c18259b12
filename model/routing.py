"""Latent confidence-aware routing (paper eq. 4 and appendix C.2): residual estimator, routing rule, top-2 weights.

`ConfidenceRouter` holds the lightweight 3D U-Net residual estimator and the routing thresholds in one config, so a
pipeline saves and loads it as one component (`router/`).

    r_hat   = U([z_warp; m])                       predicted latent residual z_target - z_warp   (B, C, F, h, w)
    r       = smooth_kr(mean_c |r_hat|)            channel-aggregated, smoothed correction demand (B, 1, F, h, w)
    c       = smooth_kc(m)                         smoothed source coverage                        (B, 1, F, h, w)
    copy    = c >= copy_min_coverage  and r <= copy_max_residual
    inpaint = (c < inpaint_max_coverage and r >= inpaint_min_residual) or r >= force_inpaint_residual
    repair  = everything else

Top-2 soft weights: the chosen route gets 1 - a and its neighbour on the copy - repair - inpaint axis gets a
(`auxiliary_weight`). Copy and inpaint have one neighbour (repair); repair leans towards copy when its residual is
below the middle of [copy_max_residual, inpaint_min_residual] and towards inpaint otherwise. The weights are then
smoothed (`weight_kernel`); smoothing averages simplex vectors, so the weights at every latent pixel (and, after the
transformer's per-patch pooling, of every token) sum to one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from model.clips import ClipRule
from model.experts import ROUTES

COPY, REPAIR, INPAINT = (ROUTES.index(name) for name in ("copy", "repair", "inpaint"))


def to_latent_grid(maps: torch.Tensor, latent_hw: tuple[int, ...], rule: ClipRule = ClipRule()) -> torch.Tensor:
    """Pixel-grid maps (B, C, T, H, W), T = r k + 1, -> the VAE's latent grid (B, C, k + 1, h, w).

    Time follows the causal VAE (`rule`: the VAE's `clip_rule`, r = 4 by default): latent 0 is frame 0, latent i > 0
    averages frames r i - r + 1 .. r i. Space is area averaged, so a soft mask stays a fraction in [0, 1].
    """
    if maps.ndim != 5 or not rule.is_valid(maps.shape[2]):
        raise ValueError(f"expected maps (B, C, T, H, W) with T = {rule.name} frames, got shape {tuple(maps.shape)}")
    b, c, t, hh, ww = maps.shape
    r = rule.temporal_compression
    grid = maps[:, :, :1]
    if t > 1:  # no empty reshape for one frame (ONNX shape inference fails on it)
        grid = torch.cat([grid, maps[:, :, 1:].reshape(b, c, (t - 1) // r, r, hh, ww).mean(dim=3)], dim=2)
    k = grid.shape[2]
    grid = F.interpolate(grid.transpose(1, 2).reshape(b * k, c, hh, ww), size=latent_hw, mode="area")
    return grid.reshape(b, k, c, *latent_hw).transpose(1, 2)


def smooth(maps: torch.Tensor, kernel: int) -> torch.Tensor:
    """Per-frame spatial box filter of odd size `kernel` on (B, C, F, h, w); borders average only inside pixels."""
    if kernel <= 1:
        return maps
    if kernel % 2 == 0:
        raise ValueError(f"smoothing kernels must be odd, got {kernel}")
    b, c, f, h, w = maps.shape
    box = maps.new_ones(1, 1, kernel, kernel)
    total = F.conv2d(maps.reshape(b * c * f, 1, h, w), box, padding=kernel // 2)
    count = F.conv2d(maps.new_ones(1, 1, h, w), box, padding=kernel // 2)
    return (total / count).reshape(b, c, f, h, w)


class FrameConv3d(nn.Conv3d):
    """nn.Conv3d (zero padding, same keys) that evaluates a one-frame input as a 2D convolution with the kernel's
    centre time slice: exact, since the other taps only see padding, and it avoids the slow Conv3d path of torch's
    CPU build (image mode runs the estimator on one latent frame)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centre = self.kernel_size[0] // 2
        if x.shape[2] != 1 or self.padding[0] != centre or self.stride[0] != 1 or self.padding_mode != "zeros":
            return super().forward(x)
        out = F.conv2d(
            x[:, :, 0], self.weight[:, :, centre], self.bias, self.stride[1:], self.padding[1:], self.dilation[1:]
        )
        return out.unsqueeze(2)


class _ConvBlock(nn.Sequential):
    """Two 3x3x3 convolutions with GroupNorm and SiLU: (B, C_in, F, h, w) -> (B, C_out, F, h, w)."""

    def __init__(self, in_channels: int, out_channels: int, groups: int) -> None:
        super().__init__(
            FrameConv3d(in_channels, out_channels, 3, padding=1),
            nn.GroupNorm(min(groups, out_channels), out_channels),
            nn.SiLU(),
            FrameConv3d(out_channels, out_channels, 3, padding=1),
            nn.GroupNorm(min(groups, out_channels), out_channels),
            nn.SiLU(),
        )


class ConfidenceRouter(ModelMixin, ConfigMixin):
    """Residual estimator (a light 3D U-Net that downsamples space only, so one latent frame works) + routing rule.

    Args:
        latent_channels: channels of the VAE latent (16 for CogVideoX).
        estimator_channels: U-Net widths per level; each level after the first halves h and w.
        estimator_groups: GroupNorm groups.
        residual_kernel, coverage_kernel, weight_kernel: odd box-filter sizes for the residual magnitude, the coverage
            map and the route weights.
        copy_min_coverage, copy_max_residual, inpaint_max_coverage, inpaint_min_residual, force_inpaint_residual:
            the routing thresholds (see the module docstring); residuals are mean |r| over channels in latent units.
        auxiliary_weight: weight of the neighbouring (second) expert in top-2 routing, in [0, 0.5].
    """

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        latent_channels: int = 16,
        estimator_channels: tuple[int, ...] = (32, 64),
        estimator_groups: int = 8,
        residual_kernel: int = 3,
        coverage_kernel: int = 5,
        weight_kernel: int = 3,
        copy_min_coverage: float = 0.9,
        copy_max_residual: float = 0.25,
        inpaint_max_coverage: float = 0.5,
        inpaint_min_residual: float = 0.5,
        force_inpaint_residual: float = 1.0,
        auxiliary_weight: float = 0.2,
    ) -> None:
        super().__init__()
        if not inpaint_max_coverage <= copy_min_coverage:
            raise ValueError(
                f"need inpaint_max_coverage <= copy_min_coverage, got {inpaint_max_coverage} > {copy_min_coverage}"
            )
        if not copy_max_residual < inpaint_min_residual <= force_inpaint_residual:
            raise ValueError(
                "need copy_max_residual < inpaint_min_residual <= force_inpaint_residual, got "
                f"{copy_max_residual}, {inpaint_min_residual}, {force_inpaint_residual}"
            )
        if not 0.0 <= auxiliary_weight <= 0.5:
            raise ValueError(f"auxiliary_weight must be in [0, 0.5], got {auxiliary_weight}")
        channels = list(estimator_channels)
        self.down = nn.ModuleList()
        previous = latent_channels + 1
        for width in channels:
            self.down.append(_ConvBlock(previous, width, estimator_groups))
            previous = width
        self.up = nn.ModuleList(
            _ConvBlock(channels[i + 1] + channels[i], channels[i], estimator_groups)
            for i in reversed(range(len(channels) - 1))
        )
        self.out = FrameConv3d(channels[0], latent_channels, 1)

    def forward(self, warped_latents: torch.Tensor, coverage_latent: torch.Tensor) -> torch.Tensor:
        """warped_latents (B, C, F, h, w), coverage_latent (B, 1, F, h, w) in [0, 1] -> residual (B, C, F, h, w)."""
        c = self.config.latent_channels
        if warped_latents.ndim != 5 or warped_latents.shape[1] != c:
            raise ValueError(f"warped_latents must be (B, {c}, F, h, w), got {tuple(warped_latents.shape)}")
        expected = (warped_latents.shape[0], 1, *warped_latents.shape[2:])
        if tuple(coverage_latent.shape) != expected:
            raise ValueError(
                f"coverage_latent must be {expected} (the warp mask on the latent grid), "
                f"got {tuple(coverage_latent.shape)}"
            )
        x = torch.cat([warped_latents, coverage_latent.to(warped_latents.dtype)], dim=1)
        skips = []
        for i, block in enumerate(self.down):
            if i > 0:
                x = F.avg_pool3d(x, (1, 2, 2), ceil_mode=True)
            x = block(x)
            skips.append(x)
        skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[2:], mode="nearest")
            x = block(torch.cat([x, skip], dim=1))
        return self.out(x)

    def route_map(self, residual: torch.Tensor, coverage_latent: torch.Tensor) -> torch.Tensor:
        """Hard routes (B, F, h, w) int64 in ROUTES order, from a residual (B, C, F, h, w) and coverage
        (B, 1, F, h, w)."""
        return self._routes(*self._smoothed(residual, coverage_latent))[0]

    def route_weights(self, residual: torch.Tensor, coverage_latent: torch.Tensor) -> torch.Tensor:
        """Top-2 soft weights on the latent grid: (B, F, h, w, 3) in ROUTES order, summing to one at every position."""
        cfg = self.config
        magnitude, coverage = self._smoothed(residual, coverage_latent)
        routes, magnitude = self._routes(magnitude, coverage)
        middle = 0.5 * (cfg.copy_max_residual + cfg.inpaint_min_residual)
        neighbour = torch.where(routes == REPAIR, torch.where(magnitude < middle, COPY, INPAINT), REPAIR)
        a = cfg.auxiliary_weight
        weights = (1 - a) * F.one_hot(routes, 3) + a * F.one_hot(neighbour, 3)
        weights = smooth(weights.permute(0, 4, 1, 2, 3).to(residual.dtype), cfg.weight_kernel)
        return weights.permute(0, 2, 3, 4, 1)

    @torch.no_grad()
    def calibrate_thresholds(
        self,
        warped_latents: list[torch.Tensor],
        coverage_latents: list[torch.Tensor],
        copy_quantile: float = 0.75,
        inpaint_quantile: float = 0.25,
        force_quantile: float = 0.995,
    ) -> dict[str, float]:
        """Set the residual thresholds from this estimator's own predictions on data (the latent units depend on the
        VAE, so fixed numbers cannot carry over between VAEs): copy_max_residual = the `copy_quantile` of the
        smoothed residual where coverage >= copy_min_coverage (most well-covered latents copy), inpaint_min_residual
        = the `inpaint_quantile` where coverage < inpaint_max_coverage (most hole latents inpaint), and
        force_inpaint_residual = the `force_quantile` over all latents. Lists of (B, C, F, h, w) / (B, 1, F, h, w)
        tensors; returns the new thresholds (also written to the config, saved with the model)."""
        cfg = self.config
        pairs = [self._smoothed(self(z, m), m) for z, m in zip(warped_latents, coverage_latents, strict=True)]
        r = torch.cat([p[0].flatten() for p in pairs])
        c = torch.cat([p[1].flatten() for p in pairs])
        covered, holes = r[c >= cfg.copy_min_coverage], r[c < cfg.inpaint_max_coverage]
        if covered.numel() == 0 or holes.numel() == 0:
            raise ValueError(
                "calibrate_thresholds needs latents with coverage >= copy_min_coverage and latents with "
                "coverage < inpaint_max_coverage: give more (or larger-baseline) samples"
            )
        copy_max = float(covered.quantile(copy_quantile))
        inpaint_min = max(float(holes.quantile(inpaint_quantile)), copy_max * 1.01)
        force = max(float(r.quantile(force_quantile)), inpaint_min)
        thresholds = {
            "copy_max_residual": copy_max,
            "inpaint_min_residual": inpaint_min,
            "force_inpaint_residual": force,
        }
        self.register_to_config(**thresholds)
        return thresholds

    def _smoothed(self, residual: torch.Tensor, coverage_latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        expected = (residual.shape[0], 1, *residual.shape[2:])
        if residual.ndim != 5 or tuple(coverage_latent.shape) != expected:
            raise ValueError(
                f"residual must be (B, C, F, h, w) and coverage {expected}, got {tuple(residual.shape)} "
                f"and {tuple(coverage_latent.shape)}"
            )
        magnitude = smooth(residual.abs().mean(dim=1, keepdim=True), self.config.residual_kernel)
        coverage = smooth(coverage_latent.to(residual.dtype), self.config.coverage_kernel)
        return magnitude, coverage

    def _routes(self, magnitude: torch.Tensor, coverage: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.config
        r, c = magnitude[:, 0], coverage[:, 0]
        copy = (c >= cfg.copy_min_coverage) & (r <= cfg.copy_max_residual)
        inpaint = ((c < cfg.inpaint_max_coverage) & (r >= cfg.inpaint_min_residual)) | (r >= cfg.force_inpaint_residual)
        routes = torch.full_like(r, REPAIR, dtype=torch.long)
        routes[copy] = COPY
        routes[inpaint] = INPAINT
        return routes, r
