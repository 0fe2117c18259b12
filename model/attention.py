"""Reference cross-attention with embodied interaction-aware attention (paper eqs. 6-7, appendix C.3).

Queries come from the video being generated, keys and values from the reference (source-video) tokens. The module
keeps TrajectoryCrafter's `PerceiverCrossAttention` parameter layout (norm1 on the reference, norm2 on the queries,
bias-free to_q / to_kv / to_out) so its checkpoints load unchanged, and adds one learnable bias per head.

    A_global = softmax(Q K^T / sqrt(d)) V
    A_guided = softmax(Q K^T / sqrt(d) + β M) V,   M_ij = 1 iff query token i and key token j are both in the region
    out      = (1 - α) A_global + α A_guided        (α: curriculum coefficient set by training)

Scalable form: a query outside the region has an all-zero bias row, so its guided output equals its global output
and only in-region queries need the guided path; for those the bias row is β·m_k, a per-key vector that broadcasts
(B, H, 1, S_k). The guided attention therefore runs only on the n_in interaction queries against all keys with a
key bias vector: O(n_in · S_k) time and no S_q × S_k bias tensor. While exporting (torch.export / ONNX), where
data-dependent shapes are unwelcome, the guided path runs on every query with the same key-bias vector and is kept
only at in-region queries (`torch.where`): static shapes, still no S_q × S_k tensor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class InteractionAwareCrossAttention(nn.Module):
    """reference (B, S_k, D_kv), hidden_states (B, S_q, D), query_region (B, S_q) bool, key_region (B, S_k) bool,
    alpha (float) -> (B, S_q, D): the residual to add to hidden_states."""

    def __init__(
        self, dim: int, heads: int = 16, dim_head: int = 128, kv_dim: int | None = None, interaction_bias: float = 2.0
    ) -> None:
        super().__init__()
        kv_dim = dim if kv_dim is None else kv_dim
        inner_dim = heads * dim_head
        self.heads = heads
        self.norm1 = nn.LayerNorm(kv_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner_dim, bias=False)
        self.to_kv = nn.Linear(kv_dim, 2 * inner_dim, bias=False)
        self.to_out = nn.Linear(inner_dim, dim, bias=False)
        self.interaction_bias = nn.Parameter(torch.full((heads,), float(interaction_bias)))

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        return x.view(b, s, self.heads, -1).transpose(1, 2)

    def forward(
        self,
        reference: torch.Tensor,
        hidden_states: torch.Tensor,
        query_region: torch.Tensor | None = None,
        key_region: torch.Tensor | None = None,
        alpha: float | torch.Tensor = 0.0,
    ) -> torch.Tensor:
        q = self._split(self.to_q(self.norm2(hidden_states)))
        k, v = (self._split(t) for t in self.to_kv(self.norm1(reference)).chunk(2, dim=-1))
        out = F.scaled_dot_product_attention(q, k, v)
        if query_region is not None and key_region is not None:
            exporting = torch.compiler.is_exporting() or torch.jit.is_tracing()
            if exporting:
                out = self._fuse_guided_static(q, k, v, out, query_region, key_region, alpha)
            elif bool(alpha != 0):
                out = self._fuse_guided(q, k, v, out, query_region, key_region, alpha)
        b, _, s, _ = out.shape
        return self.to_out(out.transpose(1, 2).reshape(b, s, -1))

    def _key_bias(self, key_region: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """β_h · m_k as (B, H, 1, S_k)."""
        return self.interaction_bias.view(1, -1, 1, 1).to(dtype) * key_region[:, None, None, :].to(dtype)

    def _check_regions(
        self, q: torch.Tensor, k: torch.Tensor, query_region: torch.Tensor, key_region: torch.Tensor
    ) -> None:
        if query_region.shape != q.shape[:1] + q.shape[2:3] or key_region.shape != k.shape[:1] + k.shape[2:3]:
            raise ValueError(
                f"interaction regions must be (B, S_q) = {tuple(q.shape[:1] + q.shape[2:3])} and "
                f"(B, S_k) = {tuple(k.shape[:1] + k.shape[2:3])}, got {tuple(query_region.shape)} and "
                f"{tuple(key_region.shape)}"
            )

    def _fuse_guided_static(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        out: torch.Tensor,
        query_region: torch.Tensor,
        key_region: torch.Tensor,
        alpha: float | torch.Tensor,
    ) -> torch.Tensor:
        self._check_regions(q, k, query_region, key_region)
        guided = F.scaled_dot_product_attention(q, k, v, attn_mask=self._key_bias(key_region, q.dtype))
        return torch.where(query_region[:, None, :, None], (1 - alpha) * out + alpha * guided, out)

    def _fuse_guided(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        out: torch.Tensor,
        query_region: torch.Tensor,
        key_region: torch.Tensor,
        alpha: float | torch.Tensor,
    ) -> torch.Tensor:
        self._check_regions(q, k, query_region, key_region)
        fused = out.clone()
        for b in range(q.shape[0]):
            idx = query_region[b].nonzero(as_tuple=True)[0]
            if idx.numel() == 0 or not bool(key_region[b].any()):
                continue
            bias = self._key_bias(key_region[b : b + 1], q.dtype)
            guided = F.scaled_dot_product_attention(q[b : b + 1, :, idx], k[b : b + 1], v[b : b + 1], attn_mask=bias)
            fused[b, :, idx] = (1 - alpha) * out[b, :, idx] + alpha * guided[0]
        return fused
