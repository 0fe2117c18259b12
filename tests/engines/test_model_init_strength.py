"""Warp-initialised sampling (PipelineSettings.init_strength): the flow sampler starts from the noised warp."""

import pytest
import torch

from model.pipeline import Embody4DPipeline, PipelineSettings, make_scheduler
from offline_training.training.flow import flow_path

torch.set_num_threads(1)
H, W = 32, 48


def _inputs():
    g = torch.Generator().manual_seed(0)
    source = torch.rand(1, 3, 1, H, W, generator=g) * 2 - 1
    warped = torch.roll(source, 4, dims=-1)
    coverage = torch.ones(1, 1, 1, H, W)
    coverage[..., :4] = 0
    return source, warped, coverage


def _pipeline(strength: float) -> Embody4DPipeline:
    pipeline = Embody4DPipeline.from_preset("tiny", seed=1)
    pipeline.settings.height, pipeline.settings.width, pipeline.settings.init_strength = H, W, strength
    return pipeline


def test_schedule_spans_the_strength():
    pipeline = _pipeline(0.3)
    assert pipeline.set_sampler_timesteps(3) == 0.3
    assert pipeline.scheduler.sigmas.tolist() == pytest.approx([0.3, 0.2, 0.1, 0.0])


def test_small_strength_stays_at_the_warp_and_full_strength_does_not():
    source, warped, coverage = _inputs()
    results = {}
    for strength in (1.0, 1e-3):
        pipeline = _pipeline(strength)
        z_warp = pipeline.vae.encode_video(warped).detach()
        latents = pipeline(
            source,
            warped,
            coverage,
            num_inference_steps=1,
            output_type="latent",
            generator=torch.Generator().manual_seed(0),
        )
        results[strength] = (latents - z_warp).abs().mean().item() / z_warp.abs().mean().item()
    # x0 = x_s - s * v with x_s = (1 - s) z_warp + s noise: within O(s) of the warp's latents
    assert results[1e-3] < 0.02
    assert results[1.0] > 0.2  # from pure noise the untrained network lands elsewhere


def test_strength_is_validated_and_needs_the_flow_sampler():
    with pytest.raises(ValueError, match="init_strength"):
        PipelineSettings(init_strength=0.0)
    pipeline = _pipeline(0.5)
    pipeline.scheduler = make_scheduler({"sampler": "ddim_v"})
    with pytest.raises(ValueError, match="flow sampler"):
        pipeline.set_sampler_timesteps(2)


def _latents(seed: int) -> torch.Tensor:
    return torch.randn(2, 16, 1, 4, 6, generator=torch.Generator().manual_seed(seed))


def test_full_strength_path_is_plain_flow_matching():
    pipeline = _pipeline(1.0)
    z_target, z_warped, noise = _latents(0), _latents(1), _latents(2)
    u = torch.tensor([0.25, 0.8])
    noisy, velocity, timestep = flow_path(pipeline, z_target, z_warped, noise, u)
    s = u.view(2, 1, 1, 1, 1)
    torch.testing.assert_close(noisy, (1 - s) * z_target + s * noise)
    torch.testing.assert_close(velocity, noise - z_target)
    torch.testing.assert_close(timestep, u * 1000)


@pytest.mark.parametrize("u", [1.0, 0.5])
def test_warp_started_path_matches_the_sampler(u):
    """Training with init_strength < 1 sees the sampler's own latents: at u = 1 the path starts where the sampler
    starts, at its first timestep, and the sampler's Euler step with the path's velocity lands on the target."""
    strength = 0.3
    pipeline = _pipeline(strength)
    z_target, z_warped, noise = _latents(0), _latents(1), _latents(2)
    noisy, velocity, timestep = flow_path(pipeline, z_target, z_warped, noise, torch.full((2,), u))
    pipeline.set_sampler_timesteps(1)
    if u == 1.0:
        torch.testing.assert_close(noisy, (1 - strength) * z_warped + strength * noise)
        assert timestep.tolist() == pytest.approx([pipeline.scheduler.timesteps[0].item()] * 2)
    else:  # from the middle of the path: a one-step schedule from this point's noise level
        pipeline.scheduler.set_timesteps(sigmas=[strength * u])
    landed = pipeline.scheduler.step(velocity, pipeline.scheduler.timesteps[0], noisy).prev_sample
    torch.testing.assert_close(landed, z_target, atol=1e-5, rtol=1e-5)
    assert (noisy - z_target).abs().mean() > 0.1  # the path point itself is not the target


def test_residual_decoding_returns_the_conditioning_when_the_latents_do_not_change():
    """With a tiny init_strength the sampled latents stay at E(warped): residual decoding then gives back the
    conditioning frames themselves, plain decoding the VAE's (here untrained) reconstruction of them."""
    source, warped, coverage = _inputs()
    error = {}
    for residual in (False, True):
        pipeline = _pipeline(1e-4)
        pipeline.settings.residual_decoding = residual
        video = pipeline(source, warped, coverage, num_inference_steps=1, generator=torch.Generator().manual_seed(0))
        assert video.shape == warped.shape and video.abs().max() <= 1.0
        error[residual] = (video - warped).abs().mean().item()
    assert error[True] < 0.01
    assert error[False] > 0.1
