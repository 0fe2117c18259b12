import pytest
import torch
from diffusers.models.transformers.cogvideox_transformer_3d import CogVideoXBlock

from model.experts import Embody4DBlock, RoutedExpertFFN

torch.set_num_threads(2)
BLOCK = dict(dim=32, num_attention_heads=2, attention_head_dim=16, time_embed_dim=16)


def _inputs():
    torch.manual_seed(1)
    h, e, t = torch.randn(2, 10, 32), torch.randn(2, 3, 32), torch.randn(2, 16)
    w = torch.softmax(torch.randn(2, 10, 3), -1)
    return h, e, t, w


def test_zero_init_block_equals_base_block():
    torch.manual_seed(0)
    block = Embody4DBlock(**BLOCK, expert_inner_dim=24).eval()
    base = CogVideoXBlock(**BLOCK).eval()
    missing = base.load_state_dict(block.state_dict(), strict=False)
    assert missing.missing_keys == []
    h, e, t, w = _inputs()
    with torch.no_grad():
        ours = block(h, e, t, route_weights=w)
        ref = base(h, e, t)
    assert (ours[0] - ref[0]).abs().max() <= 1e-6
    assert (ours[1] - ref[1]).abs().max() <= 1e-6


def test_trained_experts_change_only_video_tokens_and_follow_weights():
    torch.manual_seed(0)
    block = Embody4DBlock(**BLOCK, expert_inner_dim=24, expert_strength=0.5).eval()
    for p in block.experts.parameters():
        torch.nn.init.normal_(p, std=0.2)
    h, e, t, w = _inputs()
    with torch.no_grad():
        base = block(h, e, t)
        routed = block(h, e, t, route_weights=w)
        copy_only = block(
            h, e, t, route_weights=torch.nn.functional.one_hot(torch.zeros(2, 10, dtype=torch.long), 3).float()
        )
    assert (routed[0] - base[0]).abs().max() > 1e-4
    assert torch.equal(routed[1], base[1])  # text tokens get no expert residual
    assert not torch.allclose(routed[0], copy_only[0])


def test_expert_mixture_is_weighted_sum():
    torch.manual_seed(0)
    ffn = RoutedExpertFFN(16, 3, 8)
    for p in ffn.parameters():
        torch.nn.init.normal_(p)
    x, w = torch.randn(1, 4, 16), torch.softmax(torch.randn(1, 4, 3), -1)
    want = sum(w[..., i : i + 1] * ffn.experts[i](x) for i in range(3))
    assert torch.allclose(ffn(x, w), want, atol=1e-6)
    with pytest.raises(ValueError, match="\\(B, S, 3\\)"):
        ffn(x, w[..., :2])
