"""Embody4DPipeline: warp-conditioned latent video diffusion, image mode and clip mode, long videos in windows.

Inputs are tensors in network form (shapes below, values in [-1, 1] for images and [0, 1] for masks); the `torch`
engine (model/engines/torch_engine.py) converts uint8 frames and resizes to the preset resolution.

One generation:
    z_warp = E(warped)                  (B, 16, F, h, w)      F = k + 1 latent frames for T = 4k + 1 (image: T = F = 1)
    m      = coverage on the latent grid (B, 1, F, h, w)      soft validity; the transformer's mask channel is 1 - m
    w      = router.route_weights(router(z_warp, m), m)       (B, F, h, w, 3) copy / repair / inpaint
    z_ref  = E(source)[:, :, window start : + reference latents]
    x_T ~ N(0, I); for each scheduler step: x <- step(transformer(x, t, [1 - m; z_warp], text, z_ref, w, masks), t, x)
    video  = D(x_0)

Samplers (preset `scheduler.sampler`): "ddim_v" is the CogVideoX-Fun setting (CogVideoXDDIMScheduler, v-prediction,
zero-terminal-SNR scaled-linear betas, trailing spacing); "flow" is rectified flow (FlowMatchEulerDiscreteScheduler,
the model predicts noise - x_0) for few-step real-time sampling.

Long videos: latent frames are split into windows of `window_frames` (pixel frames, 4k+1) overlapping by
`overlap_latent_frames`. At every step each window is denoised with its own reference frames and the predictions are
blended per latent frame with linear ramps over the overlaps, then one scheduler step updates the whole latent. All
windows therefore share one trajectory and there is no hand-over at a window boundary (the paper's clip-boundary
jitter); the full latent is decoded once.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, TypeAlias

import safetensors.torch
import torch
from diffusers import CogVideoXDDIMScheduler, FlowMatchEulerDiscreteScheduler
from diffusers.configuration_utils import ConfigMixin
from diffusers.models.modeling_utils import ModelMixin

from model.clips import ClipRule
from model.conditioning import check_condition_fill
from model.presets import load_preset
from model.routing import ConfidenceRouter, to_latent_grid
from model.text_encoder import CaptionEmbedding
from model.transformer_embody4d import Embody4DTransformer3DModel
from model.vae import Embody4DVAE

Scheduler: TypeAlias = "CogVideoXDDIMScheduler | FlowMatchEulerDiscreteScheduler"
_SCHEDULERS = {cls.__name__: cls for cls in (CogVideoXDDIMScheduler, FlowMatchEulerDiscreteScheduler)}
_MODELS = {
    "vae": Embody4DVAE,
    "transformer": Embody4DTransformer3DModel,
    "router": ConfidenceRouter,
    "text_encoder": CaptionEmbedding,
}
_WEIGHTS = "diffusion_pytorch_model.safetensors"


def make_scheduler(section: dict[str, Any]) -> Scheduler:
    """A scheduler from a preset's `scheduler` section: {"sampler": "flow", "shift": s} or {"sampler": "ddim_v"}."""
    options = dict(section)
    sampler = options.pop("sampler", None)
    if sampler == "flow":
        return FlowMatchEulerDiscreteScheduler(**options)
    if sampler == "ddim_v":
        defaults = dict(
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            clip_sample=False,
            prediction_type="v_prediction",
            rescale_betas_zero_snr=True,
            set_alpha_to_one=True,
            timestep_spacing="trailing",
            snr_shift_scale=1.0,
        )
        return CogVideoXDDIMScheduler(**{**defaults, **options})
    raise ValueError(f"scheduler.sampler must be 'flow' or 'ddim_v', got {sampler!r}")


@dataclass
class PipelineSettings:
    """The preset's `pipeline` section: working resolution, windows, reference length, sampling defaults."""

    height: int = 240
    width: int = 320
    window_frames: int = 13
    overlap_latent_frames: int = 2
    reference_frames: int = 5
    num_inference_steps: int = 2
    guidance_scale: float = 1.0
    condition_fill: str = "none"  # holes of the warped frames as the network sees them (model.conditioning)
    keep_warped_pixels: bool = False  # copy every warped pixel into the output (model.conditioning)
    # flow sampler: start at noise level sigma = init_strength from (1 - sigma) E(warped) + sigma noise instead of
    # pure noise (SDEdit-style; 1.0 = pure noise). Below 1 the sample stays closer to the conditioning warp.
    init_strength: float = 1.0
    # decode the network's change to the conditioning instead of its latents: video = warped + D(z) - D(E(warped)),
    # so the VAE's own reconstruction error of the conditioning frames cancels (an unchanged latent returns them
    # exactly)
    residual_decoding: bool = False

    def __post_init__(self) -> None:
        check_condition_fill(self.condition_fill)
        if not 0.0 < self.init_strength <= 1.0:
            raise ValueError(f"pipeline.init_strength must be in (0, 1], got {self.init_strength}")
        if self.reference_frames < 1:
            raise ValueError(f"pipeline.reference_frames must be >= 1, got {self.reference_frames}")

    def check_windows(self, rule: ClipRule) -> None:
        """Raise unless the window fits the VAE's clip rule and neighbours overlap by at most half a window."""
        rule.check(self.window_frames, "pipeline.window_frames")
        if not 0 <= 2 * self.overlap_latent_frames <= rule.latent_frames(self.window_frames):
            raise ValueError(
                f"pipeline.overlap_latent_frames must be in [0, half the window's "
                f"{rule.latent_frames(self.window_frames)} latent frames], got {self.overlap_latent_frames}"
            )


def window_starts(num_latents: int, window: int, overlap: int) -> list[int]:
    """Start latent indices of evenly spaced windows of `window` latents, neighbours overlapping by >= `overlap`."""
    if num_latents <= window:
        return [0]
    count = -(-(num_latents - window) // (window - overlap)) + 1
    return [round(i * (num_latents - window) / (count - 1)) for i in range(count)]


def window_weights(starts: list[int], window: int, num_latents: int) -> torch.Tensor:
    """(len(starts), num_latents) blend weights: complementary linear ramps over each overlap (k / (o + 1)), zero
    outside a window, columns summing to one (neighbours overlap by at most half a window)."""
    weights = torch.zeros(len(starts), num_latents)
    for i, s in enumerate(starts):
        e = min(s + window, num_latents)
        ramp = torch.ones(e - s)
        if i > 0:
            overlap = max(starts[i - 1] + window - s, 0)
            ramp[:overlap] = torch.arange(1, overlap + 1) / (overlap + 1)
        if i + 1 < len(starts):
            overlap = max(e - starts[i + 1], 0)
            ramp[e - s - overlap :] = torch.minimum(
                ramp[e - s - overlap :], torch.arange(overlap, 0, -1) / (overlap + 1)
            )
        weights[i, s:e] = ramp
    return weights / weights.sum(0, keepdim=True)


@dataclass
class Conditions:
    """Everything the transformer sees besides the noisy latent, latent-grid layouts (B, C, F, h, w)."""

    coverage: torch.Tensor  # (B, 1, F, h, w)
    warped: torch.Tensor  # (B, 16, F, h, w)
    source: torch.Tensor  # (B, 16, F, h, w)
    route_weights: torch.Tensor | None  # (B, F, h, w, 3)
    interaction: torch.Tensor | None  # (B, F, h, w)
    source_interaction: torch.Tensor | None  # (B, F, h, w)
    text: torch.Tensor  # (B, L, D)


class Embody4DPipeline:
    """VAE + transformer + confidence router + caption embedding + scheduler, configured by one preset.

    Call with source (B, 3, T, H, W), warped (B, 3, T, H, W) in [-1, 1], coverage (B, 1, T, H, W) in [0, 1], optional
    target/source interaction masks (B, 1, T, H, W) in [0, 1] and captions; T = 1 (image mode) or 4k + 1 (clip mode,
    windows when T > window_frames). Returns the target video (B, 3, T, H, W) in [-1, 1].
    """

    def __init__(
        self,
        vae: Embody4DVAE,
        transformer: Embody4DTransformer3DModel,
        router: ConfidenceRouter,
        text_encoder: CaptionEmbedding,
        scheduler: Scheduler,
        settings: PipelineSettings | None = None,
    ) -> None:
        self.vae, self.transformer, self.router, self.text_encoder = vae, transformer, router, text_encoder
        self.scheduler = scheduler
        self.settings = settings or PipelineSettings()
        self.settings.check_windows(vae.clip_rule)
        for module in self.models.values():
            module.eval()

    @property
    def models(self) -> dict[str, ModelMixin]:
        return {
            "vae": self.vae,
            "transformer": self.transformer,
            "router": self.router,
            "text_encoder": self.text_encoder,
        }

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    def to(self, device: str | torch.device) -> Embody4DPipeline:
        for module in self.models.values():
            module.to(device)
        return self

    # ----------------------------------------------------------------------------------------------------- build, I/O
    @classmethod
    def from_preset(cls, name_or_path: str | Path, seed: int = 0) -> Embody4DPipeline:
        """Randomly initialised (seeded) components from a preset (see model.presets)."""
        return cls.from_components(name_or_path, seed)

    @classmethod
    def from_components(cls, preset: str | Path, seed: int = 0, **components: Any) -> Embody4DPipeline:
        """Given components (e.g. an imported transformer and vae), the rest built from `preset` (seeded)."""
        unknown = set(components) - set(_MODELS) - {"scheduler"}
        if unknown:
            raise ValueError(f"unknown components {sorted(unknown)}; expected some of {[*_MODELS, 'scheduler']}")
        preset_config = load_preset(preset)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            models = {
                name: components[name] if name in components else model_cls(**preset_config[name])
                for name, model_cls in _MODELS.items()
            }
        scheduler = components["scheduler"] if "scheduler" in components else make_scheduler(preset_config["scheduler"])
        return cls(**models, scheduler=scheduler, settings=PipelineSettings(**preset_config["pipeline"]))

    def save_pretrained(self, directory: str | Path) -> None:
        """vae/, transformer/, router/, text_encoder/ (config.json + safetensors), scheduler/, pipeline_config.json."""
        directory = Path(directory)
        for name, module in self.models.items():
            module.save_pretrained(directory / name, safe_serialization=True)
        self.scheduler.save_pretrained(directory / "scheduler")
        (directory / "pipeline_config.json").write_text(json.dumps(asdict(self.settings), indent=2))

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> Embody4DPipeline:
        """Load a directory written by `save_pretrained` (or by the TrajectoryCrafter importer); keys must match
        exactly."""
        directory = Path(directory)
        if not (directory / "pipeline_config.json").is_file():
            raise FileNotFoundError(
                f"{directory} is not an Embody4D model directory: expected pipeline_config.json, "
                f"{', '.join(f'{n}/' for n in _MODELS)} and scheduler/ inside"
            )
        models = {name: load_component(model_cls, directory / name) for name, model_cls in _MODELS.items()}
        scheduler_config = json.loads((directory / "scheduler" / "scheduler_config.json").read_text())
        scheduler_cls = _SCHEDULERS.get(scheduler_config.get("_class_name"))
        if scheduler_cls is None:
            raise ValueError(
                f"{directory}/scheduler has class {scheduler_config.get('_class_name')!r}; "
                f"expected one of {list(_SCHEDULERS)}"
            )
        settings = json.loads((directory / "pipeline_config.json").read_text())
        known = {f.name for f in fields(PipelineSettings)}
        if set(settings) - known:
            raise ValueError(
                f"pipeline_config.json has unknown keys {sorted(set(settings) - known)}; expected {sorted(known)}"
            )
        return cls(
            **models,
            scheduler=scheduler_cls.from_pretrained(directory / "scheduler"),
            settings=PipelineSettings(**settings),
        )

    # --------------------------------------------------------------------------------------------------- conditions
    def _check_inputs(
        self,
        source: torch.Tensor,
        warped: torch.Tensor,
        coverage: torch.Tensor | None,
        interaction: torch.Tensor | None,
        source_interaction: torch.Tensor | None,
    ) -> torch.Tensor:
        """Raise unless the inputs have matching shapes the model accepts; returns the (required) coverage."""
        if warped.ndim != 5 or warped.shape[1] != 3:
            raise ValueError(f"warped must be (B, 3, T, H, W), got {tuple(warped.shape)}")
        b, _, t, h, w = warped.shape
        self.vae.clip_rule.check(t, "warped clip")
        if coverage is None:
            raise ValueError(f"coverage (the warp mask) is required: (B, 1, T, H, W) = {(b, 1, t, h, w)} in [0, 1]")
        expected = {
            "source": (source, (b, 3, t, h, w)),
            "coverage": (coverage, (b, 1, t, h, w)),
            "interaction": (interaction, (b, 1, t, h, w)),
            "source_interaction": (source_interaction, (b, 1, t, h, w)),
        }
        for name, (tensor, shape) in expected.items():
            if tensor is not None and tuple(tensor.shape) != shape:
                raise ValueError(
                    f"{name} must be {shape} to match warped (B, 3, T, H, W); got {tuple(tensor.shape)} "
                    "(resize the source to the target resolution first)"
                )
        step = self.vae.spatial_scale * self.transformer.config.patch_size
        if h % step or w % step:
            raise ValueError(f"height and width must be multiples of {step} (VAE scale x patch size), got {(h, w)}")
        return coverage

    def encode_conditions(
        self,
        source: torch.Tensor,
        warped: torch.Tensor,
        coverage: torch.Tensor | None,
        interaction: torch.Tensor | None = None,
        source_interaction: torch.Tensor | None = None,
        captions: list[str | None] | None = None,
        prompt_embeds: torch.Tensor | None = None,
    ) -> Conditions:
        """Encode every condition of a clip once (VAE, router, caption); see the module docstring for shapes."""
        coverage = self._check_inputs(source, warped, coverage, interaction, source_interaction)
        z_warp, z_source = self.vae.encode_video(torch.cat([warped, source])).chunk(2)
        grid = tuple(z_warp.shape[-2:])
        m = to_latent_grid(coverage.to(z_warp.dtype), grid, self.vae.clip_rule)
        route = self.router.route_weights(self.router(z_warp, m), m)

        def region(mask: torch.Tensor | None) -> torch.Tensor | None:
            return None if mask is None else to_latent_grid(mask.to(z_warp.dtype), grid, self.vae.clip_rule)[:, 0]

        return Conditions(
            m,
            z_warp,
            z_source,
            route,
            region(interaction),
            region(source_interaction),
            self.encode_text(captions, prompt_embeds, warped.shape[0]),
        )

    def encode_text(
        self, captions: list[str | None] | None, prompt_embeds: torch.Tensor | None, batch: int
    ) -> torch.Tensor:
        """Text tokens (B, L, D): `prompt_embeds` as given (e.g. T5 at full scale) or the caption embedding."""
        if prompt_embeds is not None:
            config = self.transformer.config
            want = (batch, config.max_text_seq_length, config.text_embed_dim)
            if tuple(prompt_embeds.shape) != want:
                raise ValueError(
                    f"prompt_embeds must be (B, max_text_seq_length, text_embed_dim) = {want} "
                    f"(pad the text tokens), got {tuple(prompt_embeds.shape)}"
                )
            return prompt_embeds.to(self.device)
        captions = [None] * batch if captions is None else list(captions)
        if len(captions) != batch:
            raise ValueError(f"got {len(captions)} captions for a batch of {batch}")
        return self.text_encoder(captions)

    def predict(
        self, latents: torch.Tensor, timestep: torch.Tensor, cond: Conditions, start: int = 0, use_experts: bool = True
    ) -> torch.Tensor:
        """The transformer on latent frames [start, start + F) of (B, 16, F, h, w) latents -> (B, 16, F, h, w)."""
        f = latents.shape[2]
        window = slice(start, start + f)
        rule = self.vae.clip_rule
        ref_len = min(rule.latent_frames(rule.largest_clip(self.settings.reference_frames)), f)
        ref = slice(start, start + ref_len)

        def frames_first(x: torch.Tensor) -> torch.Tensor:
            return x.transpose(1, 2)

        inpaint = torch.cat([1 - cond.coverage[:, :, window], cond.warped[:, :, window]], dim=1)
        interaction, source_interaction = cond.interaction, cond.source_interaction
        use_regions = interaction is not None and source_interaction is not None
        out = self.transformer(
            frames_first(latents),
            timestep.expand(latents.shape[0]),
            frames_first(inpaint),
            cond.text,
            reference_latents=frames_first(cond.source[:, :, ref]) if self.transformer.has_reference_stream else None,
            route_weights=cond.route_weights[:, window] if use_experts and cond.route_weights is not None else None,
            interaction_mask=interaction[:, window] if interaction is not None and use_regions else None,
            reference_interaction_mask=(
                source_interaction[:, ref] if source_interaction is not None and use_regions else None
            ),
        ).sample
        return frames_first(out)

    # ------------------------------------------------------------------------------------------------------ sampling
    @torch.no_grad()
    def __call__(
        self,
        source: torch.Tensor,
        warped: torch.Tensor,
        coverage: torch.Tensor | None,
        interaction: torch.Tensor | None = None,
        source_interaction: torch.Tensor | None = None,
        captions: list[str | None] | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        generator: torch.Generator | None = None,
        output_type: str = "video",
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        use_experts: bool = True,
    ) -> torch.Tensor:
        """output_type "video": (B, 3, T, H, W) in [-1, 1]; "latent": the final latents (B, 16, F, h, w).

        Guidance (scale > 1) contrasts with the null caption, or with `negative_prompt_embeds` when prompt_embeds are
        given.
        use_experts=False runs the blocks without the expert FFN residuals (the evaluator's ablation).
        """
        if output_type not in ("video", "latent"):
            raise ValueError(f"output_type must be 'video' or 'latent', got {output_type!r}")
        steps = num_inference_steps or self.settings.num_inference_steps
        scale = self.settings.guidance_scale if guidance_scale is None else guidance_scale
        cond = self.encode_conditions(
            source, warped, coverage, interaction, source_interaction, captions, prompt_embeds
        )
        uncond = None
        if scale > 1.0:
            if prompt_embeds is None:
                null_text = self.text_encoder([None] * warped.shape[0])
            elif negative_prompt_embeds is not None:
                null_text = self.encode_text(None, negative_prompt_embeds, warped.shape[0])
            else:
                null_text = torch.zeros_like(cond.text)
            uncond = Conditions(**{**vars(cond), "text": null_text})
        noise = torch.randn(cond.warped.shape, generator=generator, dtype=cond.warped.dtype).to(self.device)
        strength = self.set_sampler_timesteps(steps)
        latents = noise if strength == 1.0 else (1 - strength) * cond.warped + strength * noise
        num_latents = latents.shape[2]
        window = self.vae.clip_rule.latent_frames(self.settings.window_frames)
        starts = window_starts(num_latents, window, self.settings.overlap_latent_frames)
        blend = window_weights(starts, window, num_latents).to(latents)
        for t in self.scheduler.timesteps:
            prediction = torch.zeros_like(latents)
            for i, s in enumerate(starts):
                chunk = latents[:, :, s : s + window]
                pred = self.predict(chunk, t, cond, s, use_experts)
                if uncond is not None:
                    unconditional = self.predict(chunk, t, uncond, s, use_experts)
                    pred = unconditional + scale * (pred - unconditional)
                prediction[:, :, s : s + window] += blend[i, s : s + chunk.shape[2]].view(1, 1, -1, 1, 1) * pred
            latents = self.scheduler.step(prediction, t, latents).prev_sample
        return latents if output_type == "latent" else self.decode_output(latents, warped, cond.warped)

    def decode_output(self, latents: torch.Tensor, warped: torch.Tensor, warped_latents: torch.Tensor) -> torch.Tensor:
        """The output video (B, 3, T, H, W) in [-1, 1] of final latents (B, 16, F, h, w): their decode, or with
        `residual_decoding` the conditioning frames `warped` (B, 3, T, H, W) plus the decoded change
        D(latents) - D(warped_latents). Gradients flow through the first decode only."""
        video = self.vae.decode_latents(latents, warped.shape[2])
        if not self.settings.residual_decoding:
            return video
        with torch.no_grad():
            unchanged = self.vae.decode_latents(warped_latents, warped.shape[2])
        return (warped + video - unchanged).clamp(-1.0, 1.0)

    def set_sampler_timesteps(self, steps: int) -> float:
        """Set the scheduler's timesteps for `steps` sampler steps; returns the starting noise level (init_strength):
        below 1 (flow sampler only) the steps span sigma = init_strength .. 0 instead of 1 .. 0."""
        strength = self.settings.init_strength
        if strength == 1.0:
            self.scheduler.set_timesteps(steps, device=self.device)
            return strength
        if not isinstance(self.scheduler, FlowMatchEulerDiscreteScheduler):
            raise ValueError(
                f"pipeline.init_strength < 1 needs the flow sampler, this model uses {type(self.scheduler).__name__}"
            )
        self.scheduler.set_timesteps(sigmas=[strength * (1 - i / steps) for i in range(steps)], device=self.device)
        return strength


def load_component(model_cls: type[ConfigMixin], folder: Path) -> ModelMixin:
    """Build `model_cls` from folder/config.json and load folder's safetensors strictly (clear error on key
    mismatch)."""
    weights = folder / _WEIGHTS
    if not (folder / "config.json").is_file() or not weights.is_file():
        raise FileNotFoundError(f"{folder} must hold config.json and {_WEIGHTS} for {model_cls.__name__}")
    model = model_cls.from_config(model_cls.load_config(folder))
    state = safetensors.torch.load_file(weights)
    expected = model.state_dict()
    resized = sorted(k for k in state if k in expected and state[k].shape != expected[k].shape)
    if resized:
        raise ValueError(
            f"{weights} does not match {model_cls.__name__} built from {folder / 'config.json'}: "
            f"{len(resized)} tensors have other shapes, e.g. {resized[0]} {tuple(state[resized[0]].shape)} "
            f"where {tuple(expected[resized[0]].shape)} was expected"
        )
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{weights} does not match {model_cls.__name__} built from {folder / 'config.json'}: "
            f"missing keys {sorted(missing)[:8]}{' ...' if len(missing) > 8 else ''} ({len(missing)}), "
            f"unexpected keys {sorted(unexpected)[:8]}{' ...' if len(unexpected) > 8 else ''} ({len(unexpected)})"
        )
    return model.eval()
