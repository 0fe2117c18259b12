"""The importer on a tiny checkpoint written with TrajectoryCrafter's public key names and shapes."""

import json

import pytest
import torch
from diffusers import CogVideoXTransformer3DModel
from safetensors.torch import save_file

from model.convert_trajectorycrafter import CheckpointMismatchError, import_transformer, main

torch.set_num_threads(2)
PUBLIC_CONFIG = dict(
    num_attention_heads=2,
    attention_head_dim=16,
    in_channels=33,
    out_channels=16,
    time_embed_dim=32,
    text_embed_dim=24,
    num_layers=4,
    sample_width=8,
    sample_height=6,
    sample_frames=9,
    max_text_seq_length=4,
    use_rotary_positional_embeddings=True,
)
CROSS = dict(cross_attn_in_channels=16, cross_attn_interval=2, cross_attn_dim_head=8, cross_attn_num_heads=3)


def public_state_dict() -> dict[str, torch.Tensor]:
    """CogVideoX(-Fun InP) transformer keys from diffusers plus TrajectoryCrafter's reference stream, by its names."""
    torch.manual_seed(0)
    state = CogVideoXTransformer3DModel(**PUBLIC_CONFIG).state_dict()
    d, inner = 32, 3 * 8
    state["ref_patch_embed.proj.weight"] = torch.randn(d, 16, 2, 2)
    state["ref_patch_embed.proj.bias"] = torch.randn(d)
    for j in range(PUBLIC_CONFIG["num_layers"] // 2):
        p = f"perceiver_cross_attention.{j}."
        state.update(
            {
                p + "norm1.weight": torch.rand(d) + 0.5,
                p + "norm1.bias": torch.randn(d),
                p + "norm2.weight": torch.rand(d) + 0.5,
                p + "norm2.bias": torch.randn(d),
                p + "to_q.weight": torch.randn(inner, d) * 0.2,
                p + "to_kv.weight": torch.randn(2 * inner, d) * 0.2,
                p + "to_out.weight": torch.randn(d, inner) * 0.2,
            }
        )
    return {k: v.contiguous() for k, v in state.items()}


def write_checkpoint(folder, state):
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "_class_name": "CrossTransformer3DModel",
        "is_train_cross": True,
        "add_noise_in_inpaint_model": False,
        **PUBLIC_CONFIG,
        **CROSS,
    }
    (folder / "config.json").write_text(json.dumps(config))
    save_file(state, folder / "diffusion_pytorch_model.safetensors")
    return folder


def test_import_maps_every_public_key_and_is_exact_at_init(tmp_path):
    state = public_state_dict()
    model = import_transformer(write_checkpoint(tmp_path / "tc", state), new_modules={"expert_inner_dim": 16})
    ours = model.state_dict()
    for k, v in state.items():
        assert torch.equal(ours[k], v), k
    new = sorted(set(ours) - set(state))
    assert new and all(".experts." in k or "interaction" in k for k in new)
    assert model.config.cross_attn_num_heads == 3 and len(model.perceiver_cross_attention) == 2
    g = torch.Generator().manual_seed(1)
    x, inp = torch.randn(1, 2, 16, 6, 8, generator=g), torch.randn(1, 2, 17, 6, 8, generator=g)
    txt, ref = torch.randn(1, 4, 24, generator=g), torch.randn(1, 1, 16, 6, 8, generator=g)
    weights = torch.softmax(torch.randn(1, 2, 6, 8, 3, generator=g), -1)
    masks = dict(interaction_mask=torch.ones(1, 2, 6, 8), reference_interaction_mask=torch.ones(1, 1, 6, 8))
    with torch.no_grad():
        full = model(x, 10.0, inp, txt, ref, weights, **masks).sample
        base = model(x, 10.0, inp, txt, ref).sample
    assert (full - base).abs().max() <= 1e-6


def test_cli_writes_a_complete_model_folder(tmp_path):
    from model.pipeline import Embody4DPipeline
    from model.presets import load_preset
    from model.vae import Embody4DVAE

    preset = load_preset("tiny")
    preset["text_encoder"] = {"embed_dim": 24, "max_tokens": 4, "vocab_size": 64}
    preset["pipeline"].update(height=48, width=64, num_inference_steps=1)
    (tmp_path / "preset.json").write_text(json.dumps(preset))
    Embody4DVAE(**preset["vae"]).save_pretrained(tmp_path / "vae")
    main(
        [
            "--transformer",
            str(write_checkpoint(tmp_path / "tc", public_state_dict())),
            "--vae",
            str(tmp_path / "vae"),
            "--preset",
            str(tmp_path / "preset.json"),
            "--output",
            str(tmp_path / "out"),
        ]
    )
    pipe = Embody4DPipeline.from_pretrained(tmp_path / "out")
    assert pipe.transformer.config.num_layers == 4
    assert torch.equal(pipe.transformer.state_dict()["proj_out.weight"], public_state_dict()["proj_out.weight"])
    frame = torch.rand(1, 3, 1, 48, 64) * 2 - 1
    video = pipe(frame, frame, torch.ones(1, 1, 1, 48, 64), generator=torch.Generator().manual_seed(0))
    assert video.shape == frame.shape and torch.isfinite(video).all()


@pytest.mark.parametrize(
    "damage, pattern",
    [
        ("extra", "unexpected keys.*lora_A"),
        ("missing", "missing keys.*transformer_blocks.1.attn1.to_k.weight"),
        ("shape", "shape mismatches.*proj_out.weight: expected \\(64, 32\\)"),
    ],
)
def test_mismatched_checkpoints_name_what_was_expected(tmp_path, damage, pattern):
    state = public_state_dict()
    if damage == "extra":
        state["transformer_blocks.0.attn1.to_q.lora_A.weight"] = torch.zeros(4, 32)
    elif damage == "missing":
        del state["transformer_blocks.1.attn1.to_k.weight"]
    else:
        state["proj_out.weight"] = torch.zeros(60, 32)
    with pytest.raises(CheckpointMismatchError, match=pattern):
        import_transformer(write_checkpoint(tmp_path / "tc", state))


def test_folder_without_weights(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(PUBLIC_CONFIG))
    with pytest.raises(FileNotFoundError, match="safetensors"):
        import_transformer(tmp_path)


def test_cross_attention_computes_trajectorycrafters_perceiver_attention(tmp_path):
    """TrajectoryCrafter: q from norm2(video), k/v from norm1(reference) split by chunk, both scaled by d^-1/4."""
    model = import_transformer(write_checkpoint(tmp_path / "tc", public_state_dict()))
    attn = model.perceiver_cross_attention[1]
    g = torch.Generator().manual_seed(2)
    ref, video = torch.randn(2, 5, 32, generator=g), torch.randn(2, 7, 32, generator=g)
    heads = lambda t: t.view(t.shape[0], t.shape[1], 3, -1).transpose(1, 2)
    with torch.no_grad():
        q = heads(attn.to_q(attn.norm2(video)))
        k, v = (heads(t) for t in attn.to_kv(attn.norm1(ref)).chunk(2, dim=-1))
        scale = 8**-0.25
        want = attn.to_out(
            (torch.softmax((q * scale) @ (k * scale).transpose(-2, -1), -1) @ v).permute(0, 2, 1, 3).reshape(2, 7, -1)
        )
        got = attn(ref, video)
    assert torch.allclose(got, want, atol=1e-5)
