"""The generation loop over exported graphs, shared by the `onnxruntime` and `tensorrt` engines.

Pre- and post-processing (resize to the export resolution, padding to the exported clip length, uint8 conversion:
`model.engines.processing`) and the initial noise are the torch engine's, so all engines given the same request and
seed start from the same tensors; the network parts run in the backend (`run_part`).
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path

import numpy as np
import torch

from model.conditioning import conditioning_frames
from model.engines.base import Engine, EngineError, GenerationRequest
from model.engines.processing import check_uint8_frames, finish_frames, masked_coverage, pad_to_clip, to_network_frames
from model.export.manifest import Manifest
from model.text_encoder import token_ids


class ExportedGraphEngine(Engine):
    """Runs an export directory's graphs (manifest.json + <part>.onnx) behind the Engine contract.

    Args:
        model_path: the export directory written by `embody4d export`.
        steps: must equal the exported step count if given (the sampler is unrolled at export time).

    Image-mode exports take one-frame requests; clip-mode exports take up to `frames` frames (shorter clips are
    padded with their last frame and cropped back).
    """

    def __init__(self, model_path: str | Path | None = None, steps: int | None = None) -> None:
        if model_path is None:
            raise EngineError(
                f"{self.name} engine: model_path must name an export directory; create one with "
                "`embody4d export --preset tiny --mode image --height 240 --width 320 --out DIR`"
            )
        export_dir = Path(model_path)
        try:
            self.manifest = Manifest.load(export_dir)
        except (FileNotFoundError, ValueError) as exc:
            raise EngineError(f"{self.name} engine: {exc}") from exc
        self.export_dir = export_dir
        if steps is not None and steps != self.manifest.steps:
            raise EngineError(
                f"{self.name} engine: {export_dir} was exported with {self.manifest.steps} sampler steps, "
                f"{steps} requested: export again with --steps {steps}"
            )
        for part in self.manifest.parts.values():
            for file in (part.file, part.data):
                if not (self.export_dir / file).is_file():
                    raise EngineError(
                        f"{self.name} engine: {self.export_dir / file} is missing: copy the whole "
                        "export directory (graphs travel with their .onnx.data files) or export again"
                    )

    @abstractmethod
    def run_part(self, part: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run graph `part` on named float32/int64 inputs (exactly its manifest inputs); outputs in manifest order."""

    def run(self, part: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """run_part with the feeds the graph takes (e.g. the denoiser drops unused interaction masks)."""
        return self.run_part(part, {t.name: feeds[t.name] for t in self.manifest.parts[part].inputs})

    def token_ids(self, caption: str | None) -> np.ndarray:
        """(1, L) int64 caption token ids, all zero for no caption (the null caption)."""
        ids = token_ids(caption or "", self.manifest.text_max_tokens, self.manifest.text_vocab_size)
        return np.asarray([ids], dtype=np.int64)

    def denoise(
        self, conditions: dict[str, np.ndarray], text: np.ndarray, null_text: np.ndarray | None, latents: np.ndarray
    ) -> np.ndarray:
        """The unrolled sampler: latents (1, 16, F, h, w) noise -> final latents."""
        m = self.manifest
        for t, a, b in zip(m.timesteps, m.step_scale, m.step_prediction_scale):
            feeds = {**conditions, "latents": latents, "timestep": np.asarray([t], np.float32)}
            prediction = self.run("denoiser", {**feeds, "text": text})[0]
            if null_text is not None:
                unconditional = self.run("denoiser", {**feeds, "text": null_text})[0]
                prediction = unconditional + np.float32(m.guidance_scale) * (prediction - unconditional)
            latents = np.float32(a) * latents + np.float32(b) * prediction
        return latents

    def generate(self, request: GenerationRequest) -> np.ndarray:
        """(T, h, w, 3) uint8 target frames (see GenerationRequest)."""
        m = self.manifest
        frames = request.num_frames
        if frames > m.frames or (m.mode == "image" and frames != 1):
            raise EngineError(
                f"{self.name} engine: {self.export_dir} is a {m.mode}-mode export for {m.frames} frame(s), "
                f"the request has {frames}: export with --mode clip --frames N (N = 4k+1 >= {frames})"
            )
        check_uint8_frames(request)
        size, cpu = (m.height, m.width), torch.device("cpu")

        def load(array: np.ndarray) -> np.ndarray:
            return pad_to_clip(to_network_frames(array, size, torch.float32, cpu), m.frames).numpy()

        coverage = masked_coverage(request)
        zeros = np.zeros((1, 1, m.frames, *size), np.float32)
        regions = {"interaction": zeros, "source_interaction": zeros}
        if request.source_interaction is not None and request.target_interaction is not None:
            regions = {
                "interaction": load(request.target_interaction),
                "source_interaction": load(request.source_interaction),
            }
        warped = conditioning_frames(request.warped_rgb, request.warp_mask, request.warped_depth, m.condition_fill)
        videos = np.concatenate([load(warped), load(request.source_rgb)])
        warped_latents, source_latents = self.run("vae_encoder", {"videos": videos})[0][:, None]
        coverage_latent, route_weights, interaction, source_interaction = self.run(
            "router", {"warped_latents": warped_latents, "coverage": load(coverage), **regions}
        )
        conditions = {
            "coverage_latent": coverage_latent,
            "route_weights": route_weights,
            "interaction_latent": interaction,
            "source_interaction_latent": source_interaction,
            "warped_latents": warped_latents,
            "source_latents": source_latents,
        }
        text = self.run("text_encoder", {"token_ids": self.token_ids(request.caption)})[0]
        null_text = self.run("text_encoder", {"token_ids": self.token_ids(None)})[0] if m.guidance_scale > 1.0 else None
        noise = torch.randn(m.latent_shape, generator=torch.Generator().manual_seed(request.seed)).numpy()
        if m.init_strength < 1.0:
            noise = np.float32(1 - m.init_strength) * warped_latents + np.float32(m.init_strength) * noise
        latents = self.denoise(conditions, text, null_text, noise)
        video = self.run("vae_decoder", {"latents": latents})[0]
        if m.residual_decoding:  # the decoded change to the conditioning frames (PipelineSettings.residual_decoding)
            video = load(warped) + video - self.run("vae_decoder", {"latents": warped_latents})[0]
        output = torch.from_numpy(video)
        return finish_frames(output[0, :, :frames].transpose(0, 1), request, m.keep_warped_pixels)
