import pytest
import torch
from diffusers import CogVideoXTransformer3DModel

from model.presets import available_presets, load_preset
from model.text_encoder import CaptionEmbedding, token_ids
from model.transformer_embody4d import Embody4DTransformer3DModel
from model.vae import Embody4DVAE

torch.set_num_threads(2)
BASE_KEYS = (
    "num_attention_heads",
    "attention_head_dim",
    "in_channels",
    "out_channels",
    "time_embed_dim",
    "text_embed_dim",
    "num_layers",
    "sample_width",
    "sample_height",
    "sample_frames",
    "max_text_seq_length",
    "use_rotary_positional_embeddings",
)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_presets_ship_and_load():
    assert {"tiny", "base", "trajectorycrafter-5b"} <= set(available_presets())
    with pytest.raises(FileNotFoundError, match="tiny"):
        load_preset("no-such-preset")


@pytest.mark.parametrize("name", ["tiny", "base", "trajectorycrafter-5b"])
def test_presets_build_on_meta(name):
    preset = load_preset(name)
    with torch.device("meta"):
        transformer = Embody4DTransformer3DModel(**preset["transformer"])
        vae = Embody4DVAE(**preset["vae"])
        text = CaptionEmbedding(**preset["text_encoder"])
    assert transformer.config.in_channels == 33 and transformer.config.patch_size == 2
    assert vae.config.latent_channels == 16 and vae.spatial_scale == 8
    assert text.config.embed_dim == transformer.config.text_embed_dim
    assert text.config.max_tokens == transformer.config.max_text_seq_length


def test_trajectorycrafter_5b_parameter_count():
    """Public model = CogVideoX-Fun-V1.1-5b-InP transformer (diffusers CogVideoXTransformer3DModel, 33 input channels)
    + TrajectoryCrafter's ref_patch_embed and 21 PerceiverCrossAttention (16 heads x 128, no biases); ours adds
    3 expert FFNs per block and one interaction bias per cross-attention head."""
    cfg = load_preset("trajectorycrafter-5b")["transformer"]
    with torch.device("meta"):
        ours = Embody4DTransformer3DModel(**cfg)
        cogvideox = CogVideoXTransformer3DModel(**{k: cfg[k] for k in BASE_KEYS})
    d, layers = 48 * 64, 42
    assert cfg["num_attention_heads"] * cfg["attention_head_dim"] == d and cfg["num_layers"] == layers
    inner = 16 * 128
    n_cross = layers // 2
    ref_patch_embed = 16 * d * 2 * 2 + d
    perceiver = 2 * d + 2 * d + d * inner + d * 2 * inner + inner * d
    public = count(cogvideox) + ref_patch_embed + n_cross * perceiver
    e = cfg["expert_inner_dim"]
    experts = layers * 3 * (d * e + e + e * d + d)
    bias = n_cross * 16
    assert count(ours) == public + experts + bias
    assert len(ours.perceiver_cross_attention) == n_cross
    print(
        f"\ntrajectorycrafter-5b: public {public:,} + experts {experts:,} + interaction bias {bias} = {count(ours):,}"
    )


def test_caption_embedding():
    torch.manual_seed(0)
    enc = CaptionEmbedding(embed_dim=8, max_tokens=4, vocab_size=64)
    out = enc(["a Franka arm picks the cup", None, ""])
    assert out.shape == (3, 4, 8)
    assert torch.equal(out[1], out[2]) and torch.equal(out[1], enc.null_caption)
    assert not torch.equal(out[0], out[1])
    assert torch.equal(enc(["franka ARM"])[0, :2], enc(["Franka arm!"])[0, :2])
    ids = token_ids("franka arm", 4, 64)
    assert ids == enc.token_ids("Franka ARM") and ids[2:] == [0, 0] and all(0 < i < 64 for i in ids[:2])
