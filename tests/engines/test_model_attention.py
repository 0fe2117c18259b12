import math

import pytest
import torch

from model.attention import InteractionAwareCrossAttention

torch.set_num_threads(2)


def dense_reference(attn: InteractionAwareCrossAttention, ref, x, qm, km, alpha):
    """Eqs. 6-7 written densely: a full (S_q, S_k) bias matrix β·1[q in region]·1[k in region] per head."""
    h = attn.heads
    q = attn.to_q(attn.norm2(x)).unflatten(-1, (h, -1)).transpose(1, 2)
    k, v = attn.to_kv(attn.norm1(ref)).chunk(2, dim=-1)
    k = k.unflatten(-1, (h, -1)).transpose(1, 2)
    v = v.unflatten(-1, (h, -1)).transpose(1, 2)
    logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    pair = (qm[:, None, :, None] & km[:, None, None, :]).float()
    bias = attn.interaction_bias.view(1, h, 1, 1) * pair
    out = (1 - alpha) * logits.softmax(-1) @ v + alpha * (logits + bias).softmax(-1) @ v
    return attn.to_out(out.transpose(1, 2).flatten(2))


@pytest.fixture()
def setup():
    torch.manual_seed(0)
    attn = InteractionAwareCrossAttention(dim=32, heads=4, dim_head=8, interaction_bias=3.0)
    with torch.no_grad():
        attn.interaction_bias.copy_(torch.tensor([3.0, -1.0, 0.5, 6.0]))
    x = torch.randn(3, 20, 32)
    ref = torch.randn(3, 12, 32)
    qm = torch.rand(3, 20) > 0.5
    km = torch.rand(3, 12) > 0.4
    qm[2] = False  # a sample without interaction tokens
    return attn, x, ref, qm, km


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_scalable_form_equals_dense(setup, alpha):
    attn, x, ref, qm, km = setup
    with torch.no_grad():
        fast = attn(ref, x, qm, km, alpha)
        dense = dense_reference(attn, ref, x, qm, km, alpha)
    assert torch.allclose(fast, dense, atol=1e-5)


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_static_export_form_equals_dense(setup, alpha, monkeypatch):
    attn, x, ref, qm, km = setup
    monkeypatch.setattr(torch.compiler, "is_exporting", lambda: True)
    with torch.no_grad():
        static = attn(ref, x, qm, km, alpha)
        dense = dense_reference(attn, ref, x, qm, km, alpha)
    assert torch.allclose(static, dense, atol=1e-5)


def test_bias_touches_only_in_region_pairs(setup):
    attn, x, ref, qm, km = setup
    with torch.no_grad():
        glob = attn(ref, x)
        guided = attn(ref, x, qm, km, 1.0)
        no_keys = attn(ref, x, qm, torch.zeros_like(km), 1.0)
    outside = ~qm
    assert torch.equal(guided[outside], glob[outside])
    assert (guided[qm] - glob[qm]).abs().amax(-1).min() > 1e-6
    assert torch.equal(no_keys, glob)


def test_bad_region_shape(setup):
    attn, x, ref, qm, km = setup
    with pytest.raises(ValueError, match="\\(B, S_q\\)"):
        attn(ref, x, qm[:, :5], km, 0.5)


def test_bias_gets_gradient(setup):
    attn, x, ref, qm, km = setup
    attn(ref, x, qm, km, 0.5).square().mean().backward()
    assert attn.interaction_bias.grad.abs().min() > 0
