"""Latent confidence-aware expert modulation inside a CogVideoX block (paper eq. 5, appendix C.2).

Each block keeps diffusers' CogVideoXBlock unchanged (same modules, same checkpoint keys) and gains `experts`: three
feed-forward experts (copy, repair, inpaint) whose routed sum is added to the block's FFN output before the block's
FFN gate, with strength λ:

    h <- h + g_ff * (FFN(x) + λ Σ_e w_e E_e(x))

The experts' output projections start at zero, so a freshly built block computes exactly what the base block does.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from diffusers.models.attention import FeedForward
from diffusers.models.transformers.cogvideox_transformer_3d import CogVideoXBlock
from torch import nn

ROUTES = ("copy", "repair", "inpaint")


class RoutedExpertFFN(nn.Module):
    """`num_experts` FeedForward experts mixed per token: x (B, S, D), weights (B, S, E) -> (B, S, D)."""

    def __init__(
        self,
        dim: int,
        num_experts: int = len(ROUTES),
        inner_dim: int | None = None,
        activation_fn: str = "gelu-approximate",
    ) -> None:
        super().__init__()
        experts = [
            FeedForward(dim, inner_dim=inner_dim, activation_fn=activation_fn, bias=True) for _ in range(num_experts)
        ]
        for expert in experts:
            out_proj = expert.net[2]  # FeedForward.net is [activation, dropout, output projection]
            nn.init.zeros_(out_proj.weight)
            nn.init.zeros_(out_proj.bias)
        self.experts = nn.ModuleList(experts)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if weights.shape != (*x.shape[:2], len(self.experts)):
            raise ValueError(
                f"routing weights must be (B, S, {len(self.experts)}) = {(*x.shape[:2], len(self.experts))}, "
                f"got {tuple(weights.shape)}"
            )
        weights = weights.to(x.dtype)
        return sum(weights[..., e : e + 1] * expert(x) for e, expert in enumerate(self.experts))


class Embody4DBlock(CogVideoXBlock):
    """diffusers' CogVideoXBlock plus routed expert FFNs on the FFN branch.

    forward(hidden_states (B, S, D), encoder_hidden_states (B, L, D), temb (B, D_t), image_rotary_emb=None,
            route_weights (B, S, E) or None) -> (hidden_states, encoder_hidden_states).
    Text tokens receive no expert residual. With route_weights=None the block is the base CogVideoXBlock.
    """

    def __init__(
        self,
        *,
        num_experts: int = len(ROUTES),
        expert_inner_dim: int | None = None,
        expert_strength: float = 1.0,
        **block_kwargs: Any,
    ) -> None:
        super().__init__(**block_kwargs)
        self.experts = RoutedExpertFFN(
            block_kwargs["dim"], num_experts, expert_inner_dim, block_kwargs.get("activation_fn", "gelu-approximate")
        )
        self.expert_strength = expert_strength
        self._route_weights: torch.Tensor | None = None
        # The base block calls self.ff on [text; video] tokens and gates its output; the hook adds the expert
        # residual to that output, so the base forward is reused unchanged.
        self.ff.register_forward_hook(self._add_expert_residual)

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        temb: torch.Tensor,
        image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
        route_weights: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self._route_weights = route_weights
        try:
            return super().forward(hidden_states, encoder_hidden_states, temb, image_rotary_emb)
        finally:
            self._route_weights = None

    def _add_expert_residual(
        self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor
    ) -> torch.Tensor:
        weights = self._route_weights
        if weights is None:
            return output
        x = inputs[0]
        text_len = x.shape[1] - weights.shape[1]
        residual = self.expert_strength * self.experts(x[:, text_len:], weights)
        return output + F.pad(residual, (0, 0, text_len, 0))
