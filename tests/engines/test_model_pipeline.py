"""Embody4DPipeline: image and clip mode, windows, CFG, determinism, bad input, save/load, training losses."""

import json

import pytest
import torch

from model.pipeline import Embody4DPipeline, PipelineSettings, make_scheduler, window_starts, window_weights
from model.presets import load_preset
from model.routing import ConfidenceRouter
from model.text_encoder import CaptionEmbedding
from model.transformer_embody4d import Embody4DTransformer3DModel
from model.vae import Embody4DVAE
from offline_training.training.losses import residual_target, training_loss
from offline_training.training.stages import set_training_stage

torch.set_num_threads(2)
H, W = 32, 64  # latent 4 x 8, 2 x 4 tokens per frame


def micro_pipeline(sampler: str = "flow", **settings) -> Embody4DPipeline:
    torch.manual_seed(0)
    vae = Embody4DVAE(
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=1,
        norm_num_groups=4,
        latent_channels=16,
        sample_height=H,
        sample_width=W,
    )
    transformer = Embody4DTransformer3DModel(
        num_attention_heads=2,
        attention_head_dim=16,
        time_embed_dim=32,
        text_embed_dim=16,
        num_layers=2,
        sample_height=H // 8,
        sample_width=W // 8,
        sample_frames=9,
        max_text_seq_length=4,
        use_rotary_positional_embeddings=False,
        cross_attn_dim_head=16,
        cross_attn_num_heads=2,
        expert_inner_dim=32,
    )
    router = ConfidenceRouter(latent_channels=16, estimator_channels=(8, 16), estimator_groups=4)
    text = CaptionEmbedding(embed_dim=16, max_tokens=4, vocab_size=64)
    scheduler = make_scheduler({"sampler": "flow", "shift": 1.0} if sampler == "flow" else {"sampler": "ddim_v"})
    config = dict(
        height=H, width=W, window_frames=9, overlap_latent_frames=1, reference_frames=5, num_inference_steps=2
    )
    config.update(settings)
    return Embody4DPipeline(vae, transformer, router, text, scheduler, PipelineSettings(**config))


def inputs(frames: int, seed: int = 0, batch: int = 1):
    g = torch.Generator().manual_seed(seed)
    source = torch.rand(batch, 3, frames, H, W, generator=g) * 2 - 1
    coverage = (torch.rand(batch, 1, frames, H, W, generator=g) > 0.3).float()
    region = torch.zeros(batch, 1, frames, H, W)
    region[..., 8:24, 16:48] = 1.0
    return dict(
        source=source, warped=source * coverage, coverage=coverage, interaction=region, source_interaction=region
    )


@pytest.fixture(scope="module")
def pipe():
    return micro_pipeline()


@pytest.mark.parametrize("frames", [1, 5, 17])  # image mode, one window, two overlapping windows
def test_modes_shapes_and_range(pipe, frames):
    out = pipe(**inputs(frames), generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 3, frames, H, W)
    assert out.min() >= -1 and out.max() <= 1 and torch.isfinite(out).all()


def test_fixed_seed_is_deterministic_and_seed_matters(pipe):
    data = inputs(5)
    a = pipe(**data, captions=["a robot arm"], generator=torch.Generator().manual_seed(3))
    b = pipe(**data, captions=["a robot arm"], generator=torch.Generator().manual_seed(3))
    c = pipe(**data, captions=["a robot arm"], generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_ddim_v_sampler_and_guidance():
    pipe = micro_pipeline("ddim_v")
    data = inputs(1)
    plain = pipe(**data, captions=["red cube"], generator=torch.Generator().manual_seed(0))
    guided = pipe(**data, captions=["red cube"], guidance_scale=3.0, generator=torch.Generator().manual_seed(0))
    assert plain.shape == guided.shape == (1, 3, 1, H, W)
    assert not torch.equal(plain, guided)
    embeds = torch.randn(1, 4, 16)  # e.g. T5 tokens instead of the caption embedding
    a = pipe(**data, prompt_embeds=embeds, guidance_scale=2.0, generator=torch.Generator().manual_seed(0))
    b = pipe(**data, prompt_embeds=embeds * 2, guidance_scale=2.0, generator=torch.Generator().manual_seed(0))
    assert a.shape == plain.shape and not torch.equal(a, b)
    with pytest.raises(ValueError, match="prompt_embeds must be"):
        pipe(**data, prompt_embeds=torch.randn(1, 3, 16))


def test_window_layout():
    assert window_starts(3, 3, 1) == [0]
    assert window_starts(5, 3, 1) == [0, 2]
    assert window_starts(8, 4, 2) == [0, 2, 4]
    assert window_starts(12, 5, 2) == [0, 2, 5, 7]
    starts = window_starts(7, 3, 1)
    covered = set().union(*(range(s, s + 3) for s in starts))
    assert covered == set(range(7))
    weights = window_weights(starts, 3, 7)
    torch.testing.assert_close(weights.sum(0), torch.ones(7))
    for i, s in enumerate(starts):  # zero outside its window
        assert weights[i, :s].abs().sum() == 0 and weights[i, s + 3 :].abs().sum() == 0


@pytest.mark.parametrize("num_latents,window,overlap", [(12, 5, 2), (12, 6, 3), (13, 4, 1), (7, 3, 1), (30, 4, 2)])
def test_blend_weights_hand_over_gradually(num_latents, window, overlap):
    """Per-window predictions are mixed with ramps: from one latent frame to the next no window's weight moves by
    more than 1 / (overlap + 1), so windows that disagree by D change the result by at most ~D / (overlap + 1) per
    latent frame instead of D at a hard cut."""
    starts = window_starts(num_latents, window, overlap)
    weights = window_weights(starts, window, num_latents)
    step = (weights[:, 1:] - weights[:, :-1]).abs().max()
    assert step <= 1.0 / (overlap + 1) + 1e-6
    hard = window_weights([0, 4, 8], 4, 12)  # abutting windows: a hard cut
    assert (hard[:, 1:] - hard[:, :-1]).abs().max() == 1.0


def test_bad_input_errors(pipe):
    data = inputs(5)
    with pytest.raises(ValueError, match="4k\\+1"):
        pipe(**{k: v[:, :, :4] for k, v in data.items()})
    with pytest.raises(ValueError, match="source must be"):
        pipe(**{**data, "source": data["source"][..., :32]})
    with pytest.raises(ValueError, match="coverage .*required"):
        pipe(**{**data, "coverage": None})
    with pytest.raises(ValueError, match="multiples of 16"):
        pipe(**{k: v[..., :24] for k, v in data.items()})


def test_save_load_roundtrip_and_key_errors(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "m")
    loaded = Embody4DPipeline.from_pretrained(tmp_path / "m")
    data = inputs(1)
    a = pipe(**data, generator=torch.Generator().manual_seed(0))
    b = loaded(**data, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert json.loads((tmp_path / "m" / "pipeline_config.json").read_text())["window_frames"] == 9

    import safetensors.torch

    weights = tmp_path / "m" / "router" / "diffusion_pytorch_model.safetensors"
    state = safetensors.torch.load_file(weights)
    state["extra.weight"] = torch.zeros(1)
    dropped = sorted(state)[0]
    del state[dropped]
    safetensors.torch.save_file(state, weights)
    with pytest.raises(ValueError, match=f"missing keys \\['{dropped}'\\].*unexpected keys \\['extra.weight'\\]"):
        Embody4DPipeline.from_pretrained(tmp_path / "m")
    with pytest.raises(FileNotFoundError, match="pipeline_config.json"):
        Embody4DPipeline.from_pretrained(tmp_path / "nothing")


def test_from_components_keeps_given_modules():
    given = micro_pipeline()
    pipe = Embody4DPipeline.from_components("tiny", transformer=given.transformer, vae=given.vae)
    assert pipe.transformer is given.transformer and pipe.vae is given.vae
    assert pipe.router.config.estimator_channels == load_preset("tiny")["router"]["estimator_channels"]
    with pytest.raises(ValueError, match="unknown components"):
        Embody4DPipeline.from_components("tiny", unet=given.transformer)


def _batch(frames: int = 5):
    data = inputs(frames, seed=2, batch=2)
    data["target"] = torch.rand_like(data["source"]) * 2 - 1
    data["captions"] = ["panda arm picks a cube", None]
    return data


@pytest.mark.parametrize("sampler", ["flow", "ddim_v"])
def test_stage1_gradients_reach_every_trainable_module(sampler):
    pipe = micro_pipeline(sampler)
    pipe.transformer.set_interaction_curriculum(0.5)
    with torch.no_grad():  # leave the zero init so gradients pass through the experts' hidden layers too
        for block in pipe.transformer.transformer_blocks:
            for p in block.experts.parameters():
                p.add_(torch.randn_like(p) * 0.01)
    params = set_training_stage(pipe, "stage1")
    assert params and all(not p.requires_grad for p in pipe.vae.parameters())
    assert all(not p.requires_grad for p in pipe.router.parameters())
    loss = training_loss(pipe, _batch(), "stage1", generator=torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    for root in (pipe.transformer, pipe.text_encoder):
        for name, module in root.named_modules():
            own = list(module.parameters(recurse=False))
            if own:
                assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in own), f"no gradient reaches {name}"


def test_stage2_freezes_interaction_attention_and_estimator_stage_trains_router():
    pipe = micro_pipeline()
    params = set_training_stage(pipe, "stage2")
    frozen = {id(p) for p in pipe.transformer.perceiver_cross_attention.parameters()}
    assert frozen and not frozen & {id(p) for p in params}
    assert any(id(p) in {id(q) for q in params} for p in pipe.transformer.transformer_blocks.parameters())

    params = set_training_stage(pipe, "estimator")
    assert {id(p) for p in params} == {id(p) for p in pipe.router.parameters()}
    loss = training_loss(pipe, _batch(), "estimator")
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in pipe.router.parameters())
    data = _batch()
    target = residual_target(pipe, data["target"], data["warped"])
    assert target.shape == (2, 16, 2, H // 8, W // 8)
    with pytest.raises(ValueError, match="stage must be one of"):
        set_training_stage(pipe, "stage3")


@pytest.mark.slow
def test_long_video_seams_measured_end_to_end():
    """A still camera over 33 frames (9 latents, windows of 3 overlapping by 1): frame-to-frame change at window
    hand-overs, against other latent boundaries, for latent-blended windows and for independent windows cut end to
    end."""
    pipe = micro_pipeline(window_frames=9, overlap_latent_frames=1)
    frames = 33
    still = (torch.rand(1, 3, 1, H, W, generator=torch.Generator().manual_seed(1)) * 2 - 1).expand(1, 3, frames, H, W)
    data = dict(source=still, warped=still, coverage=torch.ones(1, 1, frames, H, W))

    def ratio(video: torch.Tensor, seams: list[int]) -> float:
        change = (video[:, 1:] - video[:, :-1]).abs().mean(dim=(0, 2, 3))
        inside = [j for j in range(4, frames - 1, 4) if j not in seams]
        return (change[seams].mean() / change[inside].mean()).item()

    starts = window_starts(9, 3, 1)
    covering = [{k for k, s in enumerate(starts) if s <= i < s + 3} for i in range(9)]
    blended = pipe(**data, generator=torch.Generator().manual_seed(0))[0]
    blended_ratio = ratio(blended, [4 * i for i in range(1, 8) if covering[i] != covering[i + 1]])
    pieces = [
        pipe(**{k: v[:, :, s : s + 9] for k, v in data.items()}, generator=torch.Generator().manual_seed(s))[0]
        for s in range(0, frames - 1, 8)
    ]
    independent = torch.cat([pieces[0]] + [p[:, 1:] for p in pieces[1:]], dim=1)
    independent_ratio = ratio(independent, list(range(8, frames - 1, 8)))
    assert independent_ratio > 1.2  # cutting windows end to end does leave a seam
    assert blended_ratio - 1 < 0.5 * (independent_ratio - 1)  # blending removes most of the seam excess
