"""Exponential moving average of the trained parameters."""

from __future__ import annotations

import torch

UPDATES_KEY = "ema.num_updates"  # parameter names are "<component>.<key>", so this cannot collide


class EMA:
    """shadow <- d * shadow + (1 - d) * param after every optimiser step, for named parameters, with the warm-up
    d = min(decay, (1 + n) / (10 + n)) after n updates: without it the initial weights keep a weight of decay^n
    (13 % after 2000 steps at 0.999), which in a short run from random init ruins the average.

    `state_dict()` / `load_state_dict()` hold the shadow tensors by name and the update count (saved as safetensors
    in checkpoints); `copy_to(named_params)` writes the shadow into a model for export.
    """

    def __init__(self, named: dict[str, torch.nn.Parameter], decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.num_updates = 0
        self.shadow = {name: p.detach().clone().float() for name, p in named.items()}

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self, named: dict[str, torch.nn.Parameter]) -> None:
        weight = 1.0 - self.current_decay()
        for name, p in named.items():
            self.shadow[name].lerp_(p.detach().float(), weight)
        self.num_updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {
            **{name: t.contiguous() for name, t in self.shadow.items()},
            UPDATES_KEY: torch.tensor(self.num_updates, dtype=torch.int64),
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        state = dict(state)
        if UPDATES_KEY not in state:
            raise ValueError(
                f"EMA state has no {UPDATES_KEY!r}: it was written by an older version without the "
                "EMA warm-up; resume it with that version or start a new run"
            )
        self.num_updates = int(state.pop(UPDATES_KEY))
        if set(state) != set(self.shadow):
            raise ValueError(
                f"EMA state holds other parameters: missing {sorted(set(self.shadow) - set(state))[:4]}, "
                f"unexpected {sorted(set(state) - set(self.shadow))[:4]}"
            )
        self.shadow = {name: t.clone().float() for name, t in state.items()}

    @torch.no_grad()
    def copy_to(self, named: dict[str, torch.nn.Parameter]) -> None:
        for name, p in named.items():
            p.copy_(self.shadow[name].to(p.dtype))
