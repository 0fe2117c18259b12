"""Training objectives: the per-stage loss (`training_loss`), the pixel loss through the frozen decoder
(`pixel_loss`, `hole_image_loss`), the VAE's reconstruction loss and the estimator's target.

Differentiable image losses for training in pixel space:

`ssim_map` follows the evaluator's SSIM (offline_training.metrics.ssim_map: Gaussian 11x11 window, sigma 1.5, per
channel, population statistics, channel mean) so that a pixel loss optimises what `embody4d eval` reports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from diffusers import FlowMatchEulerDiscreteScheduler

from offline_training.training.flow import flow_path
from offline_training.training.stages import STAGES

if TYPE_CHECKING:
    from model.pipeline import Conditions, Embody4DPipeline
    from model.vae import Embody4DVAE

_C1, _C2 = 0.01**2, 0.03**2  # SSIM's stabilisers for a data range of 1


def _gaussian_window(sigma: float, radius: int, channels: int, like: torch.Tensor) -> torch.Tensor:
    x = torch.arange(-radius, radius + 1, dtype=like.dtype, device=like.device)
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, -1, -1).contiguous()


def ssim_map(pred: torch.Tensor, truth: torch.Tensor, sigma: float = 1.5, radius: int = 5) -> torch.Tensor:
    """Per-pixel SSIM (N, H, W), averaged over channels, of images (N, C, H, W) in [-1, 1]. Borders are reflected."""
    if pred.shape != truth.shape or pred.ndim != 4:
        raise ValueError(
            f"pred and truth must be (N, C, H, W) of one shape, got {tuple(pred.shape)} and {tuple(truth.shape)}"
        )
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


def hole_image_loss(
    generated: torch.Tensor, kept: torch.Tensor, keep_mask: torch.Tensor, truth: torch.Tensor
) -> torch.Tensor:
    """L1 + (1 - SSIM) of the output as the engines compose it: `kept` pixels where keep_mask, `generated` elsewhere.

    generated, kept, truth: videos (B, 3, T, H, W) in [-1, 1]; keep_mask (B, 1, T, H, W) bool. Only the generated
    pixels carry gradient; the SSIM windows see the seams between them and the kept pixels, as the metric does.
    """
    composed = torch.where(keep_mask, kept, generated)
    frames = composed.transpose(1, 2).flatten(0, 1), truth.transpose(1, 2).flatten(0, 1)  # (B T, 3, H, W)
    return (composed - truth).abs().mean() + (1 - ssim_map(*frames)).mean()


def vae_loss(
    vae: Embody4DVAE, video: torch.Tensor, kl_weight: float = 1e-6, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Reconstruction target for training a (tiny) VAE: MSE(decode(sample), video) + kl_weight * KL.

    video (B, 3, T, H, W) in [-1, 1], T = 4k+1.
    """
    vae.clip_rule.check(video.shape[2])
    dist = vae.encode(video).latent_dist
    recon = vae.decode(dist.sample(generator)).sample
    recon = recon[:, :, recon.shape[2] - video.shape[2] :]
    return F.mse_loss(recon, video) + kl_weight * dist.kl().mean()


def residual_target(pipeline: Embody4DPipeline, target: torch.Tensor, warped: torch.Tensor) -> torch.Tensor:
    """The estimator's training target: E(target) - E(warped), (B, 16, F, h, w), with the frozen VAE."""
    with torch.no_grad():
        return pipeline.vae.encode_video(target) - pipeline.vae.encode_video(warped)


def training_loss(
    pipeline: Embody4DPipeline,
    batch: dict[str, Any],
    stage: str = "stage1",
    generator: torch.Generator | None = None,
    kl_weight: float = 1e-6,
    use_experts: bool = True,
    pixel_weight: float = 0.0,
) -> torch.Tensor:
    """Scalar loss for a batch of network-form tensors (keys: source, target, warped, coverage, optional
    interaction, source_interaction, captions or prompt_embeds; shapes as in `Embody4DPipeline.__call__`).
    Call `set_training_stage(pipeline, stage)` first.

    vae:       reconstruction MSE of the target clip + kl_weight * KL (`vae_loss`).
    estimator: MSE between router(E(warped), m) and E(target) - E(warped).
    stage1/2:  diffusion loss at a random time: v-prediction MSE (ddim_v) or flow-matching MSE (flow; with
               init_strength < 1 on the path from the noised warp to the target, as the sampler runs);
               use_experts=False trains without the expert residuals (they get no gradient). pixel_weight > 0
               (flow only) adds that times `hole_image_loss` of the one-step estimate decoded as the engines
               output it (residual decoding, warped pixels kept where coverage > 0).
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    if stage == "vae":
        return vae_loss(pipeline.vae, batch["target"], kl_weight, generator)
    with torch.no_grad():
        cond = pipeline.encode_conditions(
            batch["source"],
            batch["warped"],
            batch.get("coverage"),
            batch.get("interaction"),
            batch.get("source_interaction"),
            None,
        )
        z_target = pipeline.vae.encode_video(batch["target"])
    if stage == "estimator":
        return F.mse_loss(pipeline.router(cond.warped, cond.coverage), z_target - cond.warped)
    cond.text = pipeline.encode_text(batch.get("captions"), batch.get("prompt_embeds"), z_target.shape[0])
    noise = torch.randn(z_target.shape, generator=generator).to(z_target)
    b = z_target.shape[0]
    if isinstance(pipeline.scheduler, FlowMatchEulerDiscreteScheduler):
        shift = pipeline.scheduler.config.shift
        u = torch.rand(b, generator=generator).to(z_target)
        noisy, target, timestep = flow_path(pipeline, z_target, cond.warped, noise, shift * u / (1 + (shift - 1) * u))
    else:
        if pipeline.settings.init_strength < 1.0:
            raise ValueError(
                "pipeline.init_strength < 1 needs the flow sampler, this model uses "
                f"{type(pipeline.scheduler).__name__}"
            )
        timestep = torch.randint(0, pipeline.scheduler.config.num_train_timesteps, (b,), generator=generator).to(
            pipeline.device
        )
        noisy = pipeline.scheduler.add_noise(z_target, noise, timestep)
        target = pipeline.scheduler.get_velocity(z_target, noise, timestep)
    prediction = pipeline.predict(noisy, timestep, cond, use_experts=use_experts)
    loss = F.mse_loss(prediction, target)
    if pixel_weight:
        loss = loss + pixel_weight * pixel_loss(pipeline, noisy, prediction, timestep, cond, batch)
    return loss


def pixel_loss(
    pipeline: Embody4DPipeline,
    noisy: torch.Tensor,
    prediction: torch.Tensor,
    timestep: torch.Tensor,
    cond: Conditions,
    batch: dict[str, Any],
) -> torch.Tensor:
    """`hole_image_loss` of the flow sampler's one-step estimate x0 = noisy - sigma * prediction, decoded by the
    frozen VAE and composed as the engines compose it (residual_decoding, keep_warped_pixels)."""
    if not isinstance(pipeline.scheduler, FlowMatchEulerDiscreteScheduler):
        raise ValueError(f"the pixel loss needs the flow sampler, this model uses {type(pipeline.scheduler).__name__}")
    sigma = (timestep / pipeline.scheduler.config.num_train_timesteps).view(-1, 1, 1, 1, 1)
    video = pipeline.decode_output(noisy - sigma * prediction, batch["warped"], cond.warped)
    keep = (
        batch["coverage"] > 0
        if pipeline.settings.keep_warped_pixels
        else torch.zeros_like(batch["coverage"], dtype=torch.bool)
    )
    return hole_image_loss(video, batch["warped"], keep, batch["target"])
