"""The clip lengths the video VAE accepts: T = r k + 1 pixel frames encode to k + 1 latent frames, where r is the VAE's
`temporal_compression_ratio` (4 for CogVideoX: 1, 5, 9, 13, ..., 49 frames).

A model reads its rule from its VAE's configuration (`Embody4DVAE.clip_rule`); `ClipRule()` is the CogVideoX rule,
for checks made before any model is loaded (dataset and command-line options). Torch-free on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ClipRule:
    """Clip lengths r k + 1 for a temporal compression ratio r (latent 0 is frame 0, latent i > 0 covers r frames)."""

    temporal_compression: int = 4

    def __post_init__(self) -> None:
        if self.temporal_compression < 1:
            raise ValueError(f"temporal_compression must be >= 1, got {self.temporal_compression}")

    @property
    def name(self) -> str:
        """The rule as the error messages spell it, e.g. "4k+1"."""
        return f"{self.temporal_compression}k+1"

    def is_valid(self, num_frames: int) -> bool:
        return num_frames >= 1 and (num_frames - 1) % self.temporal_compression == 0

    def check(self, num_frames: int, what: str = "clip") -> None:
        """Raise ValueError unless num_frames = r k + 1, naming the nearest valid lengths."""
        if not self.is_valid(num_frames):
            r = self.temporal_compression
            lower = (num_frames - 1) // r * r + 1
            examples = ", ".join(str(1 + r * k) for k in range(4))
            raise ValueError(
                f"{what} has {num_frames} frames; the video VAE needs {self.name} frames ({examples}, ...), "
                f"e.g. {max(lower, 1)} or {lower + r}"
            )

    def latent_frames(self, num_frames: int) -> int:
        """Latent frames of a valid clip: k + 1."""
        self.check(num_frames)
        return (num_frames - 1) // self.temporal_compression + 1

    def padded_length(self, num_frames: int) -> int:
        """The shortest valid clip holding `num_frames` >= 1 frames (engines pad with the last frame)."""
        if num_frames < 1:
            raise ValueError(f"need at least one frame, got {num_frames}")
        r = self.temporal_compression
        return (num_frames - 1 + r - 1) // r * r + 1

    def largest_clip(self, num_frames: int) -> int:
        """The longest valid clip that fits in `num_frames` >= 1 frames."""
        if num_frames < 1:
            raise ValueError(f"need at least one frame, got {num_frames}")
        r = self.temporal_compression
        return (num_frames - 1) // r * r + 1

    def latent_index(self, frame: Any) -> Any:
        """The latent frame holding pixel frame `frame` (0 -> 0; r i - r + 1 .. r i -> i); ints or integer arrays."""
        return (frame + self.temporal_compression - 1) // self.temporal_compression
