import pytest
import torch
from diffusers import CogVideoXTransformer3DModel

from model.transformer_embody4d import Embody4DTransformer3DModel

torch.set_num_threads(2)
BASE = dict(
    num_attention_heads=2,
    attention_head_dim=16,
    in_channels=33,
    out_channels=16,
    time_embed_dim=32,
    text_embed_dim=24,
    num_layers=3,
    sample_width=8,
    sample_height=6,
    sample_frames=9,
    max_text_seq_length=4,
)
NEW = dict(cross_attn_interval=2, cross_attn_dim_head=8, cross_attn_num_heads=2, expert_inner_dim=16)


def make(seed=0, **kw):
    torch.manual_seed(seed)
    return Embody4DTransformer3DModel(**{**BASE, **NEW, **kw}).eval()


def inputs(frames=3, ref_frames=2, seed=1, batch=2):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)
    return dict(
        hidden_states=r(batch, frames, 16, 6, 8),
        timestep=torch.full((batch,), 500.0),
        inpaint_latents=r(batch, frames, 17, 6, 8),
        encoder_hidden_states=r(batch, 4, 24),
        reference_latents=r(batch, ref_frames, 16, 6, 8),
        route_weights=torch.softmax(r(batch, frames, 6, 8, 3), -1),
        interaction_mask=(torch.rand(batch, frames, 6, 8, generator=g) > 0.4).float(),
        reference_interaction_mask=(torch.rand(batch, ref_frames, 6, 8, generator=g) > 0.4).float(),
    )


@pytest.mark.parametrize("rotary", [False, True])
@pytest.mark.parametrize("frames", [1, 3])
def test_shapes_image_and_clip(rotary, frames):
    model = make(use_rotary_positional_embeddings=rotary)
    kw = inputs(frames=frames, ref_frames=1)
    with torch.no_grad():
        out = model(**kw).sample
        no_ref = model(**{k: v for k, v in kw.items() if "reference" not in k}).sample
    assert out.shape == kw["hidden_states"].shape == no_ref.shape
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("rotary", [False, True])
def test_zero_init_equals_base_model(rotary):
    model = make(use_rotary_positional_embeddings=rotary)
    kw = inputs()
    base_kw = {
        k: v for k, v in kw.items() if k not in ("route_weights", "interaction_mask", "reference_interaction_mask")
    }
    with torch.no_grad():
        full = model(**kw).sample
        base = model(**base_kw).sample
    assert (full - base).abs().max() <= 1e-6
    model.set_interaction_curriculum(0.5)
    with torch.no_grad():
        assert (model(**kw).sample - base).abs().max() > 1e-4  # the guided path is live once α > 0


@pytest.mark.parametrize("rotary", [False, True])
def test_without_reference_stream_matches_diffusers_cogvideox(rotary):
    model = make(use_rotary_positional_embeddings=rotary, cross_attn_interval=0)
    ref = CogVideoXTransformer3DModel(**BASE, use_rotary_positional_embeddings=rotary).eval()
    result = ref.load_state_dict(model.state_dict(), strict=False)
    assert result.missing_keys == []
    kw = inputs()
    rotary_emb = model._rotary_embedding(3, 6, 8, torch.device("cpu"))
    with torch.no_grad():
        ours = model(
            kw["hidden_states"],
            kw["timestep"],
            kw["inpaint_latents"],
            kw["encoder_hidden_states"],
            route_weights=kw["route_weights"],
        ).sample
        theirs = ref(
            torch.cat([kw["hidden_states"], kw["inpaint_latents"]], 2),
            kw["encoder_hidden_states"],
            kw["timestep"],
            image_rotary_emb=rotary_emb,
        ).sample
    assert (ours - theirs).abs().max() <= 1e-5


def test_gradients_reach_every_trainable_module():
    model = make(interaction_mask_dropout=0.0)
    model.set_interaction_curriculum(0.5)
    model.train()
    model(**inputs()).sample.square().mean().backward()
    groups = {
        "patch_embed": model.patch_embed,
        "time_embedding": model.time_embedding,
        "ref_patch_embed": model.ref_patch_embed,
        "norm_out": model.norm_out,
        "proj_out": model.proj_out,
        "norm_final": model.norm_final,
    }
    for i, block in enumerate(model.transformer_blocks):
        for name in ("norm1", "attn1", "norm2", "ff"):
            groups[f"block{i}.{name}"] = getattr(block, name)
        for e, expert in enumerate(block.experts.experts):
            groups[f"block{i}.expert{e}"] = expert
    for j, attn in enumerate(model.perceiver_cross_attention):
        groups[f"cross{j}"] = attn
        assert attn.interaction_bias.grad.abs().min() > 0, f"cross{j}.interaction_bias got no gradient"
    dead = [
        name
        for name, module in groups.items()
        if not any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
    ]
    assert dead == []


def test_fixed_seed_is_deterministic():
    a, b = make(seed=3, interaction_mask_dropout=0.5), make(seed=3, interaction_mask_dropout=0.5)
    for model in (a, b):
        model.set_interaction_curriculum(0.7)
        model.train()
    outs = []
    for model in (a, b):
        torch.manual_seed(11)
        with torch.no_grad():
            outs.append(model(**inputs()).sample)
    assert torch.equal(outs[0], outs[1])


def test_mask_dropout_one_drops_the_guided_path():
    model = make(interaction_mask_dropout=1.0)
    model.set_interaction_curriculum(1.0)
    kw = inputs()
    with torch.no_grad():
        model.train()
        dropped = model(**kw).sample
        model.eval()
        kept = model(**kw).sample
        plain = model(**{k: v for k, v in kw.items() if "interaction" not in k}).sample
    assert torch.allclose(dropped, plain, atol=1e-6)
    assert not torch.allclose(kept, plain, atol=1e-4)


def test_bad_inputs_name_what_was_expected():
    model = make()
    kw = inputs()
    cases = [
        ("inpaint_latents", kw["inpaint_latents"][:, :, :16], "mask 1 \\+ warped 16"),
        ("reference_latents", kw["reference_latents"][..., :4], "F_ref, 16, 6, 8"),
        ("route_weights", kw["route_weights"][..., :2], "\\(B, F, H, W, 3\\)"),
        ("interaction_mask", kw["interaction_mask"][:, :1], "\\(B, F, H, W\\)"),
        ("hidden_states", kw["hidden_states"][:, :, :, :5], None),
    ]
    for key, value, pattern in cases:
        bad = dict(kw, **{key: value})
        with pytest.raises(ValueError, match=pattern):
            model(**bad)
    with pytest.raises(ValueError, match="\\[0, 1\\]"):
        model.set_interaction_curriculum(1.5)


def test_save_and_load_roundtrip(tmp_path):
    model = make()
    model.set_interaction_curriculum(0.25)
    model.save_pretrained(tmp_path)
    loaded = Embody4DTransformer3DModel.from_pretrained(tmp_path).eval()
    assert float(loaded.interaction_alpha) == 0.25
    kw = inputs()
    with torch.no_grad():
        assert torch.equal(model(**kw).sample, loaded(**kw).sample)


def test_gradient_checkpointing_gives_the_same_gradients():
    grads = []
    for checkpointing in (False, True):
        model = make(interaction_mask_dropout=0.0)
        model.set_interaction_curriculum(0.5)
        for p in model.transformer_blocks[0].experts.parameters():
            torch.nn.init.normal_(p, std=0.1)
        if checkpointing:
            model.enable_gradient_checkpointing()
        model.train()
        model(**inputs()).sample.square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_rotary_embedding_accepts_tensor_shapes():
    """Under torch.onnx's tracer the latent shape arrives as 0-d tensors."""
    model = make(use_rotary_positional_embeddings=True)
    cos, sin = model._rotary_embedding(torch.tensor(2), torch.tensor(6), torch.tensor(8), torch.device("cpu"))
    want_cos, _ = model._rotary_embedding(2, 6, 8, torch.device("cpu"))
    assert torch.equal(cos, want_cos) and cos.shape[0] == 2 * 3 * 4


def test_training_step_after_inference_mode_calls():
    """Rotary tables first built under inference_mode must not poison a later training step (autograd refuses to save
    inference tensors for backward), as in gpu_check's inference-then-training run."""
    model = make(use_rotary_positional_embeddings=True)
    kw = inputs()
    with torch.inference_mode():
        model(**kw)
    model.train()
    model(**kw).sample.square().mean().backward()
    assert any(p.grad is not None for p in model.parameters())
