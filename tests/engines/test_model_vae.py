import pytest
import torch
from diffusers import AutoencoderKLCogVideoX

from model.clips import ClipRule
from model.vae import Embody4DVAE
from offline_training.training.losses import vae_loss

torch.set_num_threads(2)
CFG = dict(block_out_channels=(8, 8, 16, 16), layers_per_block=1, norm_num_groups=4, latent_channels=16)


@pytest.fixture(scope="module")
def vae() -> Embody4DVAE:
    torch.manual_seed(0)
    return Embody4DVAE(**CFG).eval()


def test_single_frame_fast_path_matches_cogvideox(vae):
    ref = AutoencoderKLCogVideoX(**CFG).eval()
    ref.load_state_dict(vae.state_dict())
    x = torch.rand(2, 3, 1, 48, 64) * 2 - 1
    with torch.no_grad():
        z = vae.encode_video(x)
        z_ref = ref.encode(x).latent_dist.mode() * ref.config.scaling_factor
        y = vae.decode_latents(z, 1)
        y_ref = ref.decode(z_ref / ref.config.scaling_factor).sample.clamp(-1, 1)
    assert z.shape == (2, 16, 1, 6, 8)
    assert torch.allclose(z, z_ref, atol=1e-4)
    assert y.shape == x.shape
    assert torch.allclose(y, y_ref, atol=1e-4)


@pytest.mark.parametrize("frames", [5, 9, 13])
def test_clip_shapes(vae, frames):
    x = torch.rand(1, 3, frames, 32, 48) * 2 - 1
    with torch.no_grad():
        z = vae.encode_video(x)
        y = vae.decode_latents(z, frames)
    assert z.shape == (1, 16, (frames - 1) // 4 + 1, 4, 6)  # causal: frame 0, then 4 frames per latent
    assert y.shape == x.shape
    assert y.abs().max() <= 1.0


def test_bad_inputs(vae):
    with pytest.raises(ValueError, match="4k\\+1"):
        vae.clip_rule.check(12)
    with pytest.raises(ValueError, match="4k\\+1"):
        vae.encode_video(torch.zeros(1, 3, 12, 32, 32))
    with pytest.raises(ValueError, match="multiples of 8"):
        vae.encode_video(torch.zeros(1, 3, 1, 30, 32))
    with pytest.raises(ValueError, match="\\(B, 3, T, H, W\\)"):
        vae.encode_video(torch.zeros(1, 1, 32, 32))


def test_training_loss_has_gradients(vae):
    vae.train()
    x = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    loss = vae_loss(vae, x, generator=torch.Generator().manual_seed(0))
    loss.backward()
    vae.eval()
    assert torch.isfinite(loss)
    assert vae.encoder.conv_in.conv.weight.grad.abs().sum() > 0
    assert vae.decoder.conv_out.conv.weight.grad.abs().sum() > 0
    vae.zero_grad()


def test_save_and_load_keep_the_config_and_the_fast_path(vae, tmp_path):
    vae.save_pretrained(tmp_path)
    loaded = Embody4DVAE.from_pretrained(tmp_path).eval()
    assert tuple(loaded.config.block_out_channels) == CFG["block_out_channels"]
    assert Embody4DVAE.from_config(Embody4DVAE.load_config(tmp_path)).config.norm_num_groups == 4
    x = torch.rand(1, 3, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded.encode_video(x), vae.encode_video(x))
    conv = loaded.encoder.conv_in
    assert conv.forward.__func__.__name__ == "_single_frame_forward"


def test_clip_rule_comes_from_the_vae_config(vae):
    assert vae.clip_rule == ClipRule(vae.config.temporal_compression_ratio) == ClipRule(4)
    assert [n for n in range(1, 15) if vae.clip_rule.is_valid(n)] == [1, 5, 9, 13]


def test_clip_rule_arithmetic_for_another_ratio():
    rule = ClipRule(2)  # valid lengths 1, 3, 5, 7, ...
    assert [rule.padded_length(n) for n in range(1, 7)] == [1, 3, 3, 5, 5, 7]
    assert [rule.largest_clip(n) for n in range(1, 7)] == [1, 1, 3, 3, 5, 5]
    assert [rule.latent_frames(n) for n in (1, 3, 5)] == [1, 2, 3]
    assert [rule.latent_index(t) for t in range(6)] == [0, 1, 1, 2, 2, 3]
    with pytest.raises(ValueError, match="2k\\+1"):
        rule.check(4)
