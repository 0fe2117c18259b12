"""The `torch` engine: Embody4DPipeline behind the Engine contract (docs/DESIGN.md contract 3)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from model.conditioning import conditioning_frames
from model.engines.base import Engine, EngineError, GenerationRequest
from model.engines.processing import check_uint8_frames, finish_frames, masked_coverage, pad_to_clip, to_network_frames
from model.pipeline import Embody4DPipeline
from model.presets import available_presets

log = logging.getLogger(__name__)
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"


class TorchEngine(Engine):
    """Generates the target view with the Embody4D network in PyTorch.

    Args:
        model_path: a directory written by `Embody4DPipeline.save_pretrained` (or the TrajectoryCrafter importer).
            None: the bundled `model/weights/<preset>` if present, else the preset with random (untrained) weights,
            with a warning.
        steps: sampler steps per generation.
        device: torch device, e.g. "cpu" or "cuda".
        preset: the preset used when model_path is None.
        guidance_scale: classifier-free guidance scale; None keeps the model's default.
        num_threads: torch CPU threads (None leaves torch's setting).
        pipeline: an already built pipeline (tests, benchmarks); overrides model_path and preset.
        use_experts: False runs without the expert FFN residuals (ablation).
        use_interaction: False ignores interaction masks, so interaction-aware attention stays off (ablation).

    Requests at another resolution than the model's are resized in and out; clips whose length the VAE does not
    accept (4k+1, `Embody4DVAE.clip_rule`) are padded with their last frame and cropped back; longer clips than the
    model's window run in overlapping windows.
    """

    name = "torch"

    def __init__(
        self,
        model_path: str | None = None,
        steps: int = 2,
        device: str = "cpu",
        preset: str = "tiny",
        guidance_scale: float | None = None,
        num_threads: int | None = None,
        pipeline: Embody4DPipeline | None = None,
        use_experts: bool = True,
        use_interaction: bool = True,
    ) -> None:
        if steps < 1:
            raise EngineError(f"torch engine: steps must be >= 1, got {steps}")
        if num_threads:
            torch.set_num_threads(num_threads)
        self.steps, self.guidance_scale = steps, guidance_scale
        self.use_experts, self.use_interaction = use_experts, use_interaction
        self.device = torch.device(device)
        self.pipeline = (pipeline or self._load(model_path, preset)).to(self.device)

    @staticmethod
    def _load(model_path: str | None, preset: str) -> Embody4DPipeline:
        if model_path is None and (WEIGHTS_DIR / preset / "pipeline_config.json").is_file():
            model_path = str(WEIGHTS_DIR / preset)
        if model_path is None:
            if preset not in available_presets():
                raise EngineError(f"torch engine: unknown preset {preset!r}; choose one of {available_presets()}")
            log.warning(
                "torch engine: no model_path and no bundled weights for preset %r: using random, untrained "
                "weights (output is not meaningful until a trained model is given)",
                preset,
            )
            return Embody4DPipeline.from_preset(preset)
        try:
            return Embody4DPipeline.from_pretrained(model_path)
        except (FileNotFoundError, ValueError) as exc:
            raise EngineError(f"torch engine: cannot load model_path {model_path!r}: {exc}") from exc

    @torch.inference_mode()
    def generate(self, request: GenerationRequest) -> np.ndarray:
        """(T, h, w, 3) uint8 target frames for the request (see GenerationRequest for the inputs)."""
        check_uint8_frames(request)
        settings = self.pipeline.settings
        size, dtype = (settings.height, settings.width), next(self.pipeline.vae.parameters()).dtype
        frames = request.num_frames
        clip = self.pipeline.vae.clip_rule.padded_length(frames)

        def load(array: np.ndarray) -> torch.Tensor:
            return pad_to_clip(to_network_frames(array, size, dtype, self.device), clip)

        coverage = masked_coverage(request)
        target_region = source_region = None
        if self.use_interaction and request.source_interaction is not None and request.target_interaction is not None:
            target_region, source_region = load(request.target_interaction), load(request.source_interaction)
        warped = conditioning_frames(
            request.warped_rgb, request.warp_mask, request.warped_depth, settings.condition_fill
        )
        video = self.pipeline(
            load(request.source_rgb),
            load(warped),
            load(coverage),
            interaction=target_region,
            source_interaction=source_region,
            captions=[request.caption],
            num_inference_steps=self.steps,
            guidance_scale=self.guidance_scale,
            generator=torch.Generator().manual_seed(request.seed),
            use_experts=self.use_experts,
        )[0, :, :frames].transpose(0, 1)  # (T, 3, H, W)
        return finish_frames(video, request, settings.keep_warped_pixels)
