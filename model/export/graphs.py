"""The ONNX graphs of one Embody4D generation and their export (fixed shapes per mode and resolution).

A generation (see model/pipeline.py) is split into five graphs; the sampler loop between them is a few affine
updates that the runtime engines do themselves (coefficients in the manifest):

    vae_encoder   videos (2, 3, T, H, W) [warped; source] in [-1, 1]        -> latents (2, 16, F, h, w)
    text_encoder  token_ids (1, L) int64 (all zero: the null caption)        -> text (1, L, D)
    router        warped_latents (1, 16, F, h, w), coverage, interaction, source_interaction (1, 1, T, H, W) in [0, 1]
                  -> coverage_latent (1, 1, F, h, w), route_weights (1, F, h, w, 3),
                     interaction_latent, source_interaction_latent (1, F, h, w)
    denoiser      latents (1, 16, F, h, w), timestep (1,) float32, the router outputs, warped_latents,
                  source_latents (1, 16, F, h, w), text (1, L, D)          -> prediction (1, 16, F, h, w)
    vae_decoder   latents (1, 16, F, h, w)                                  -> video (1, 3, T, H, W) in [-1, 1]

T = 1 in image mode, 4k + 1 in clip mode (at most one window: F <= the window's latent frames); h, w = H/8, W/8.
Absent interaction masks are all-zero inputs: no token lies in the region, so the interaction-aware attention
reduces to the global one, exactly what the pipeline computes without masks.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from model.pipeline import Conditions, Embody4DPipeline
from model.routing import to_latent_grid

PARTS = ("vae_encoder", "text_encoder", "router", "denoiser", "vae_decoder")
OPSET = 17


class VAEEncoderPart(nn.Module):
    """videos (2, 3, T, H, W) -> scaled latents (2, 16, F, h, w) (the distribution's mode, as the pipeline uses)."""

    def __init__(self, pipeline: Embody4DPipeline) -> None:
        super().__init__()
        self.vae = pipeline.vae

    def forward(self, videos: torch.Tensor) -> torch.Tensor:
        return self.vae.encode_video(videos)


class TextEncoderPart(nn.Module):
    """token_ids (1, L) int64 -> text tokens (1, L, D); ids all zero (no word) give the learned null caption."""

    def __init__(self, pipeline: Embody4DPipeline) -> None:
        super().__init__()
        self.text = pipeline.text_encoder

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        embedded = self.text.tokens(token_ids) + self.text.positions
        is_null = (token_ids == 0).all(dim=1).view(-1, 1, 1)
        return torch.where(is_null, self.text.null_caption.unsqueeze(0), embedded)


class RouterPart(nn.Module):
    """Pixel-grid masks and the warped latents -> latent-grid masks and the routing weights (see module docstring)."""

    def __init__(self, pipeline: Embody4DPipeline) -> None:
        super().__init__()
        self.router = pipeline.router
        self.rule = pipeline.vae.clip_rule

    def forward(
        self,
        warped_latents: torch.Tensor,
        coverage: torch.Tensor,
        interaction: torch.Tensor,
        source_interaction: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        grid = tuple(warped_latents.shape[-2:])
        m = to_latent_grid(coverage, grid, self.rule)
        route = self.router.route_weights(self.router(warped_latents, m), m)
        return (
            m,
            route,
            to_latent_grid(interaction, grid, self.rule)[:, 0],
            to_latent_grid(source_interaction, grid, self.rule)[:, 0],
        )


class DenoiserPart(nn.Module):
    """One transformer evaluation (Embody4DPipeline.predict on the whole latent, window start 0).

    The rotary embedding of the fixed latent shape (frames, h, w) is computed eagerly here: the transformer derives
    it from traced shapes with Python arithmetic that the tracer cannot follow; in the graph it is a constant.
    While the interaction curriculum coefficient α is 0 the interaction-aware path cannot change the output (the
    eager model skips it too), so the graph leaves it out and keeps the two mask inputs unused.
    """

    def __init__(self, pipeline: Embody4DPipeline, latent_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.transformer = pipeline.transformer  # registered so that its weights become graph initialisers
        self.rotary = self.transformer._rotary_embedding(*latent_shape, pipeline.device)

    def forward(
        self,
        latents: torch.Tensor,
        timestep: torch.Tensor,
        coverage_latent: torch.Tensor,
        route_weights: torch.Tensor,
        interaction_latent: torch.Tensor,
        source_interaction_latent: torch.Tensor,
        warped_latents: torch.Tensor,
        source_latents: torch.Tensor,
        text: torch.Tensor,
    ) -> torch.Tensor:
        regions = bool(self.transformer.interaction_alpha != 0)
        cond = Conditions(
            coverage_latent,
            warped_latents,
            source_latents,
            route_weights,
            interaction_latent if regions else None,
            source_interaction_latent if regions else None,
            text,
        )
        # an instance attribute shadows the method for the trace (mypy cannot know that is intended)
        self.transformer._rotary_embedding = lambda *shape: self.rotary  # type: ignore[method-assign]
        try:
            return self.pipeline.predict(latents, timestep, cond)
        finally:
            del self.transformer._rotary_embedding


class VAEDecoderPart(nn.Module):
    """latents (1, 16, F, h, w) -> video (1, 3, T, H, W) in [-1, 1]."""

    def __init__(self, pipeline: Embody4DPipeline, frames: int) -> None:
        super().__init__()
        self.vae, self.frames = pipeline.vae, frames

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode_latents(latents, self.frames)


@dataclass
class PartSpec:
    """One graph to export: its module, example inputs and tensor names."""

    module: nn.Module
    inputs: dict[str, torch.Tensor]
    outputs: list[str]


def part_specs(
    pipeline: Embody4DPipeline, frames: int, height: int, width: int, generator: torch.Generator
) -> dict[str, PartSpec]:
    """Example inputs (random, seeded) at the fixed shapes of one mode and resolution, per part."""
    scale = pipeline.vae.spatial_scale
    f, h, w = pipeline.vae.clip_rule.latent_frames(frames), height // scale, width // scale
    channels = pipeline.vae.config.latent_channels
    text_cfg = pipeline.transformer.config
    experts = text_cfg.num_experts

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=generator)

    def normal(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=generator)

    latent = (1, channels, f, h, w)
    route = rand(1, f, h, w, experts)
    denoiser_inputs = {
        "latents": normal(*latent),
        "timestep": torch.tensor([500.0]),
        "coverage_latent": rand(1, 1, f, h, w),
        "route_weights": route / route.sum(-1, keepdim=True),
        "interaction_latent": rand(1, f, h, w),
        "source_interaction_latent": rand(1, f, h, w),
        "warped_latents": normal(*latent),
        "source_latents": normal(*latent),
        "text": normal(1, text_cfg.max_text_seq_length, text_cfg.text_embed_dim),
    }
    max_tokens = pipeline.text_encoder.config.max_tokens
    return {
        "vae_encoder": PartSpec(
            VAEEncoderPart(pipeline), {"videos": rand(2, 3, frames, height, width) * 2 - 1}, ["latents"]
        ),
        "text_encoder": PartSpec(
            TextEncoderPart(pipeline),
            {
                "token_ids": torch.randint(
                    1, pipeline.text_encoder.config.vocab_size, (1, max_tokens), generator=generator
                )
            },
            ["text"],
        ),
        "router": PartSpec(
            RouterPart(pipeline),
            {
                "warped_latents": normal(*latent),
                "coverage": rand(1, 1, frames, height, width),
                "interaction": rand(1, 1, frames, height, width),
                "source_interaction": rand(1, 1, frames, height, width),
            },
            ["coverage_latent", "route_weights", "interaction_latent", "source_interaction_latent"],
        ),
        "denoiser": PartSpec(DenoiserPart(pipeline, (f, h, w)), denoiser_inputs, ["prediction"]),
        "vae_decoder": PartSpec(VAEDecoderPart(pipeline, frames), {"latents": normal(*latent)}, ["video"]),
    }


def export_part(spec: PartSpec, path: Path, opset: int = OPSET) -> None:
    """Export one part to `path` (graph) + `path`.data (weights as external data) and run the ONNX checker.

    The TorchScript-based exporter (dynamo=False) is used: these graphs have fixed shapes and no data-dependent
    control flow, and it exports them in seconds where the dynamo exporter takes minutes on this CPU.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            spec.module.eval(),
            tuple(spec.inputs.values()),
            str(path),
            dynamo=False,
            input_names=list(spec.inputs),
            output_names=spec.outputs,
            opset_version=opset,
            do_constant_folding=True,
        )
    model = simplify_static_graph(onnx.load(str(path)), {k: v.numpy() for k, v in spec.inputs.items()})
    data = path.with_name(path.name + ".data")
    data.unlink(missing_ok=True)
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=data.name,
        size_threshold=1024,
    )
    onnx.checker.check_model(str(path))


def _collapse(src: list[int], dst: list[int]) -> tuple[list[int], list[int]]:
    """Merge neighbouring axes that keep their size (src, dst) -> fewer axes with the same memory layout."""
    merged_src: list[int] = []
    merged_dst: list[int] = []
    for n, o in zip(src, dst):
        if merged_src and n == o and merged_src[-1] == merged_dst[-1]:
            merged_src[-1] *= n
            merged_dst[-1] *= o
        else:
            merged_src.append(n)
            merged_dst.append(o)
    return merged_src, merged_dst


def simplify_static_graph(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> onnx.ModelProto:
    """Rewrite two patterns of the traced VAE that onnxruntime's CPU kernels run slowly, given the fixed shapes.

    - Nearest-neighbour Resize with integer scale factors (torch's mode="nearest": asymmetric coordinates, floor)
      repeats every element s times along an axis: Reshape (.., n, 1, ..) -> Expand (.., n, s, ..) -> Reshape, with
      axes that keep their size merged. Repeats of one upsampling (every spatial norm of a decoder level upsamples the
      same latent to the same size) are computed once and shared through Identity nodes.
    - Gather of index 0 along an axis of size 1 (the single-frame convolution path's `x[:, :, 0]`) is a Squeeze.
    The shapes come from one onnxruntime run on `feeds` (Resize target sizes are computed inside the graph, so static
    shape inference does not know them).
    """
    import onnxruntime as ort

    graph = model.graph
    constants = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}
    constants.update(
        {
            n.output[0]: onnx.numpy_helper.to_array(n.attribute[0].t)
            for n in graph.node
            if n.op_type == "Constant" and n.attribute[0].name == "value"
        }
    )
    resizes = [n for n in graph.node if n.op_type == "Resize"]
    gathers = [
        n
        for n in graph.node
        if n.op_type == "Gather"
        and n.input[1] in constants
        and constants[n.input[1]].ndim == 0
        and int(constants[n.input[1]]) == 0
    ]
    gather_ids = {id(n) for n in gathers}
    names = sorted({*(name for n in resizes for name in (n.input[0], n.output[0])), *(n.input[0] for n in gathers)})
    if not names:
        return model
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.output[:]
    probe.graph.output.extend(onnx.helper.make_empty_tensor_value_info(name) for name in names)
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    used = {i.name: feeds[i.name] for i in session.get_inputs()}
    shapes = {name: list(value.shape) for name, value in zip(names, session.run(None, used))}

    def constant(name: str, value: list[int]) -> str:
        graph.initializer.append(onnx.numpy_helper.from_array(np.asarray(value, np.int64), name))
        return name

    nodes = []
    done: dict[tuple[str, tuple[int, ...]], str] = {}
    for node in graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        name = node.name or node.output[0]
        if id(node) in gather_ids and shapes[node.input[0]][attrs.get("axis", 0)] == 1:
            axis = attrs.get("axis", 0) % len(shapes[node.input[0]])
            nodes.append(
                onnx.helper.make_node("Squeeze", [node.input[0], constant(f"{name}/axes", [axis])], node.output)
            )
            continue
        nearest = (
            node.op_type == "Resize"
            and attrs.get("mode") == b"nearest"
            and attrs.get("coordinate_transformation_mode", b"half_pixel") == b"asymmetric"
            and attrs.get("nearest_mode", b"round_prefer_floor") == b"floor"
        )
        src, dst = (shapes[node.input[0]], shapes[node.output[0]]) if nearest else ([], [])
        if not (nearest and len(src) == len(dst) and all(i > 0 and o % i == 0 for i, o in zip(src, dst))):
            nodes.append(node)
            continue
        key = (node.input[0], tuple(dst))
        if key in done:
            nodes.append(onnx.helper.make_node("Identity", [done[key]], [node.output[0]]))
            continue
        done[key] = node.output[0]
        small, large = _collapse(src, dst)
        nodes += [
            onnx.helper.make_node(
                "Reshape",
                [node.input[0], constant(f"{name}/interleaved", [v for n in small for v in (n, 1)])],
                [f"{name}/r"],
            ),
            onnx.helper.make_node(
                "Expand",
                [f"{name}/r", constant(f"{name}/expanded", [v for n, o in zip(small, large) for v in (n, o // n)])],
                [f"{name}/e"],
            ),
            onnx.helper.make_node("Reshape", [f"{name}/e", constant(f"{name}/out", dst)], [node.output[0]]),
        ]
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def file_sha256(*paths: Path) -> str:
    """sha256 over the bytes of the given files, in order (a graph and its external data)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def model_sha256(pipeline: Embody4DPipeline) -> str:
    """sha256 of every weight (name, dtype, shape, bytes), the scheduler config and the pipeline settings."""
    digest = hashlib.sha256()
    for name, module in pipeline.models.items():
        for key, tensor in sorted(module.state_dict().items()):
            array = tensor.detach().cpu().contiguous().numpy()
            digest.update(f"{name}.{key}:{array.dtype}:{array.shape}".encode())
            digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(repr(sorted(dict(pipeline.scheduler.config).items())).encode())
    digest.update(repr(sorted(vars(pipeline.settings).items())).encode())
    return digest.hexdigest()


def unrolled_sampler(
    pipeline: Embody4DPipeline, steps: int, shape: tuple[int, ...]
) -> tuple[list[float], list[float], list[float]]:
    """(timesteps, a, b) with scheduler.step(prediction, t_i, x) == a_i * x + b_i * prediction for every step.

    The coefficients are read off the pipeline's own scheduler (one pass with x = 1, prediction = 0, one with
    x = 0, prediction = 1) and checked on random inputs, so a sampler that is not such an update fails here.
    """
    scheduler = pipeline.scheduler

    def run(x: torch.Tensor, prediction: torch.Tensor) -> tuple[list[float], list[torch.Tensor]]:
        pipeline.set_sampler_timesteps(steps)
        times = [float(t) for t in scheduler.timesteps]
        return times, [scheduler.step(prediction, t, x).prev_sample for t in scheduler.timesteps]

    ones, zeros = torch.ones(shape), torch.zeros(shape)
    timesteps, a = run(ones, zeros)
    _, b = run(zeros, ones)
    generator = torch.Generator().manual_seed(0)
    x, prediction = torch.randn(shape, generator=generator), torch.randn(shape, generator=generator)
    _, reference = run(x, prediction)
    scale, prediction_scale = [float(t.flatten()[0]) for t in a], [float(t.flatten()[0]) for t in b]
    for i, ref in enumerate(reference):
        if not torch.allclose(scale[i] * x + prediction_scale[i] * prediction, ref, rtol=1e-5, atol=1e-5):
            raise ValueError(
                f"{type(scheduler).__name__} step {i} is not an affine update of (latents, prediction); "
                "it cannot be unrolled into the manifest"
            )
    return timesteps, scale, prediction_scale


def tensor_spec(name: str, tensor: torch.Tensor) -> dict[str, Any]:
    """Manifest entry of a graph tensor: name, fixed shape, numpy dtype name."""
    return {"name": name, "shape": list(tensor.shape), "dtype": str(tensor.numpy().dtype)}
