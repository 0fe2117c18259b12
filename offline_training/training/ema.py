"""Exponential moving average of the trained parameters."""
from __future__ import annotations

import torch


class EMA:
    """shadow <- decay * shadow + (1 - decay) * param after every optimiser step, for named parameters.

    `state_dict()` / `load_state_dict()` hold the shadow tensors by name (saved as safetensors in checkpoints);
    `copy_to(named_params)` writes them into a model for export.
    """

    def __init__(self, named: dict[str, torch.nn.Parameter], decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.shadow = {name: p.detach().clone().float() for name, p in named.items()}

    @torch.no_grad()
    def update(self, named: dict[str, torch.nn.Parameter]) -> None:
        for name, p in named.items():
            self.shadow[name].lerp_(p.detach().float(), 1.0 - self.decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: t.contiguous() for name, t in self.shadow.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if set(state) != set(self.shadow):
            raise ValueError(f"EMA state holds other parameters: missing {sorted(set(self.shadow) - set(state))[:4]}, "
                             f"unexpected {sorted(set(state) - set(self.shadow))[:4]}")
        self.shadow = {name: t.clone().float() for name, t in state.items()}

    @torch.no_grad()
    def copy_to(self, named: dict[str, torch.nn.Parameter]) -> None:
        for name, p in named.items():
            p.copy_(self.shadow[name].to(p.dtype))
