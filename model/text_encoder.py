"""Caption conditioning for the small presets: hashed words -> learned token embeddings (no tokenizer download).

At full scale the transformer takes T5-XXL embeddings (B, 226, 4096) as `prompt_embeds`; this module stands in for it
where no T5 is at hand and is what the tiny preset trains. Words are lower-cased alphanumeric runs, hashed (crc32)
into `vocab_size - 1` buckets (0 is padding). An absent caption maps to a learned null caption, the unconditional
input for classifier-free guidance.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

_WORD = re.compile(r"[a-z0-9]+")


def token_ids(caption: str, max_tokens: int, vocab_size: int) -> list[int]:
    """A caption's word-hash ids, padded with 0 to max_tokens (shared by the torch module and exported engines)."""
    words = _WORD.findall(caption.lower())[:max_tokens]
    ids = [zlib.crc32(w.encode()) % (vocab_size - 1) + 1 for w in words]
    return ids + [0] * (max_tokens - len(ids))


class CaptionEmbedding(ModelMixin, ConfigMixin):
    """captions (B strings or None) -> (B, max_tokens, embed_dim)."""

    @register_to_config
    def __init__(self, embed_dim: int = 64, max_tokens: int = 8, vocab_size: int = 4096) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.positions = nn.Parameter(torch.randn(max_tokens, embed_dim) * 0.02)
        self.null_caption = nn.Parameter(torch.randn(max_tokens, embed_dim) * 0.02)

    def token_ids(self, caption: str) -> list[int]:
        return token_ids(caption, self.config.max_tokens, self.config.vocab_size)

    def forward(self, captions: Sequence[str | None]) -> torch.Tensor:
        device = self.positions.device
        out: list[torch.Tensor] = []
        for caption in captions:
            if not caption or not _WORD.search(caption.lower()):
                out.append(self.null_caption)
            else:
                ids = torch.tensor(self.token_ids(caption), device=device)
                out.append(self.tokens(ids) + self.positions)
        return torch.stack(out)
