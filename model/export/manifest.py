"""manifest.json of an export directory: what was exported, at which shapes, from which model, with which sampler.

Runtime engines (onnxruntime, tensorrt) read only this file and the graphs next to it; nothing here imports torch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "embody4d-onnx/1"
MANIFEST = "manifest.json"


@dataclass
class TensorSpec:
    """One graph input or output: name, fixed shape, numpy dtype name."""

    name: str
    shape: list[int]
    dtype: str


@dataclass
class PartManifest:
    """One exported graph: `file` (graph) and `data` (external weights) relative to the export directory."""

    file: str
    data: str
    sha256: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]


@dataclass
class Manifest:
    """Everything a runtime needs besides the graphs.

    The sampler is unrolled: step i evaluates the denoiser at `timesteps[i]` and updates
    latents <- step_scale[i] * latents + step_prediction_scale[i] * prediction (exact for the pipeline's samplers,
    checked at export). Guidance > 1 runs the denoiser twice per step (caption and null caption).
    """

    mode: str
    height: int
    width: int
    frames: int
    latent_shape: list[int]
    steps: int
    sampler: str
    timesteps: list[float]
    step_scale: list[float]
    step_prediction_scale: list[float]
    guidance_scale: float
    text_max_tokens: int
    text_vocab_size: int
    opset: int
    source_model_sha256: str
    source_model: str
    exporter: str
    parts: dict[str, PartManifest] = field(default_factory=dict)
    condition_fill: str = "none"  # model.conditioning, copied from the model's pipeline settings
    keep_warped_pixels: bool = False
    init_strength: float = 1.0  # latents start at (1 - s) * warped_latents + s * noise
    residual_decoding: bool = False  # video = warped + D(latents) - D(warped_latents)
    format: str = FORMAT

    def save(self, directory: Path) -> Path:
        path = Path(directory) / MANIFEST
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Manifest:
        """Read directory/manifest.json; raises FileNotFoundError / ValueError saying how to make a valid one."""
        path = Path(directory) / MANIFEST
        if not path.is_file():
            raise FileNotFoundError(
                f"{directory} holds no {MANIFEST}: create an export with "
                "`embody4d export --preset tiny --mode image --height 240 --width 320 --out DIR`"
            )
        raw: dict[str, Any] = json.loads(path.read_text())
        if raw.get("format") != FORMAT:
            raise ValueError(f"{path} has format {raw.get('format')!r}, this code reads {FORMAT!r}: export again")
        parts = {
            name: PartManifest(
                **{
                    **part,
                    "inputs": [TensorSpec(**t) for t in part["inputs"]],
                    "outputs": [TensorSpec(**t) for t in part["outputs"]],
                }
            )
            for name, part in raw.pop("parts").items()
        }
        return cls(**raw, parts=parts)
