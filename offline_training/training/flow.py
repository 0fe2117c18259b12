"""The flow sampler's training path: where the warp-initialised sampler (`pipeline.init_strength` < 1) starts, and
the velocity that leads from there to the target."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from model.pipeline import Embody4DPipeline


def flow_path(
    pipeline: Embody4DPipeline, z_target: torch.Tensor, z_warped: torch.Tensor, noise: torch.Tensor, u: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A point of the flow sampler's path and its velocity: (noisy latents, velocity target, timestep (B,)).

    The path runs straight from the sampler's start, (1 - s0) z_warped + s0 noise with s0 = init_strength (pure
    noise at 1), to z_target; u (B,) in [0, 1] is the fraction of the way back to the start, at noise level
    sigma = s0 u. So training sees the latents the warp-initialised sampler sees, and an Euler step with the
    target velocity from any point lands on z_target. Latents (B, 16, F, h, w).
    """
    strength = pipeline.settings.init_strength
    s = u.view(-1, *[1] * (z_target.ndim - 1))
    start = noise if strength == 1.0 else (1 - strength) * z_warped + strength * noise
    return (
        (1 - s) * z_target + s * start,
        (start - z_target) / strength,
        strength * u * pipeline.scheduler.config.num_train_timesteps,
    )
