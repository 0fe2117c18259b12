"""`embody4d export`: ONNX graphs of an Embody4D model at fixed shapes, with manifest.json (model/export/graphs.py).

    embody4d export --preset tiny --mode image --height 240 --width 320 --steps 2 --out exports/tiny-image-240x320
    embody4d export --model DIR --mode clip --frames 13 --height 384 --width 672 --out exports/clip

The directory then holds <part>.onnx + <part>.onnx.data for each part in graphs.PARTS and manifest.json; the
`onnxruntime` and `tensorrt` engines run it (`export_dir` option).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch and the model load only when a command runs
    from model.export.manifest import Manifest
    from model.pipeline import Embody4DPipeline

log = logging.getLogger(__name__)


def export_model(
    pipeline: Embody4DPipeline,
    out: str | Path,
    mode: str,
    height: int,
    width: int,
    steps: int | None = None,
    frames: int | None = None,
    source: str = "",
    seed: int = 0,
) -> Manifest:
    """Export every part of `pipeline` for one mode and resolution into `out`; returns the saved manifest.

    mode "image": T = 1; "clip": T = `frames` (4k + 1, default the pipeline's window, at most one window).
    steps: sampler steps unrolled into the manifest (default the pipeline's). Inputs used for tracing are random
    (seeded by `seed`); every graph passes onnx.checker. Inputs a graph does not use (the interaction masks while
    the model's interaction curriculum α is 0) are left out of it and of the manifest.
    """
    import onnx
    import torch

    from model.export.graphs import (
        OPSET,
        PARTS,
        export_part,
        file_sha256,
        model_sha256,
        part_specs,
        tensor_spec,
        unrolled_sampler,
    )
    from model.export.manifest import Manifest, PartManifest, TensorSpec

    settings = pipeline.settings
    if mode not in ("image", "clip"):
        raise ValueError(f"mode must be 'image' or 'clip', got {mode!r}")
    frames = 1 if mode == "image" else (frames or settings.window_frames)
    rule = pipeline.vae.clip_rule
    rule.check(frames, "--frames")
    if rule.latent_frames(frames) > rule.latent_frames(settings.window_frames):
        raise ValueError(
            f"clip exports hold one window: --frames must be <= the model's window_frames "
            f"{settings.window_frames}, got {frames}"
        )
    step = pipeline.vae.spatial_scale * pipeline.transformer.config.patch_size
    if height % step or width % step:
        raise ValueError(f"--height and --width must be multiples of {step}, got {height}x{width}")
    steps = steps or settings.num_inference_steps
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pipeline.to("cpu")
    specs = part_specs(pipeline, frames, height, width, torch.Generator().manual_seed(seed))
    latent_shape = list(specs["vae_decoder"].inputs["latents"].shape)
    timesteps, scale, prediction_scale = unrolled_sampler(pipeline, steps, tuple(latent_shape))
    parts = {}
    for name in PARTS:
        spec = specs[name]
        path = out / f"{name}.onnx"
        log.info("exporting %s -> %s", name, path)
        export_part(spec, path)
        with torch.no_grad():
            result = spec.module(*spec.inputs.values())
        results = result if isinstance(result, tuple) else (result,)
        data = path.with_name(path.name + ".data")
        graph_inputs = {i.name for i in onnx.load(str(path), load_external_data=False).graph.input}
        parts[name] = PartManifest(
            file=path.name,
            data=data.name,
            sha256=file_sha256(path, data),
            inputs=[TensorSpec(**tensor_spec(k, v)) for k, v in spec.inputs.items() if k in graph_inputs],
            outputs=[TensorSpec(**tensor_spec(k, v)) for k, v in zip(spec.outputs, results)],
        )
    manifest = Manifest(
        mode=mode,
        height=height,
        width=width,
        frames=frames,
        latent_shape=latent_shape,
        steps=steps,
        sampler=type(pipeline.scheduler).__name__,
        timesteps=timesteps,
        step_scale=scale,
        step_prediction_scale=prediction_scale,
        guidance_scale=float(settings.guidance_scale),
        text_max_tokens=int(pipeline.text_encoder.config.max_tokens),
        text_vocab_size=int(pipeline.text_encoder.config.vocab_size),
        opset=OPSET,
        source_model_sha256=model_sha256(pipeline),
        source_model=source,
        exporter=f"torch.onnx (TorchScript exporter) torch {torch.__version__}",
        parts=parts,
        condition_fill=settings.condition_fill,
        keep_warped_pixels=settings.keep_warped_pixels,
        init_strength=settings.init_strength,
        residual_decoding=settings.residual_decoding,
    )
    manifest.save(out)
    return manifest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="model directory (Embody4DPipeline.save_pretrained layout)")
    source.add_argument("--preset", help="preset name with random weights (seeded by --seed), e.g. tiny")
    parser.add_argument("--mode", choices=("image", "clip"), default="image")
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--frames", type=int, help="clip mode: frames per clip (4k+1, default the model's window)")
    parser.add_argument("--steps", type=int, help="sampler steps (default the model's num_inference_steps)")
    parser.add_argument("--seed", type=int, default=0, help="seed of random preset weights and tracing inputs")
    parser.add_argument("--out", required=True, help="output directory (created)")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from model.pipeline import Embody4DPipeline
    from model.presets import available_presets

    if args.preset and args.preset not in available_presets():
        log.error("unknown preset %r; choose one of %s", args.preset, available_presets())
        return 2
    try:
        pipeline = (
            Embody4DPipeline.from_pretrained(args.model)
            if args.model
            else Embody4DPipeline.from_preset(args.preset, seed=args.seed)
        )
        manifest = export_model(
            pipeline,
            args.out,
            args.mode,
            args.height,
            args.width,
            args.steps,
            args.frames,
            source=args.model or f"preset:{args.preset} seed {args.seed}",
            seed=args.seed,
        )
    except (FileNotFoundError, ValueError) as exc:
        log.error("export failed: %s", exc)
        return 2
    log.info(
        "wrote %s: %s mode %dx%d, %d frames, %d steps (%s), parts %s",
        Path(args.out) / "manifest.json",
        manifest.mode,
        manifest.height,
        manifest.width,
        manifest.frames,
        manifest.steps,
        manifest.sampler,
        ", ".join(manifest.parts),
    )
    return 0
