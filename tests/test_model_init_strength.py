"""Warp-initialised sampling (PipelineSettings.init_strength): the flow sampler starts from the noised warp."""
import pytest
import torch

from model.pipeline import Embody4DPipeline, PipelineSettings, make_scheduler

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
        latents = pipeline(source, warped, coverage, num_inference_steps=1, output_type="latent",
                           generator=torch.Generator().manual_seed(0))
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
