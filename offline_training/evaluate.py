"""`embody4d eval`: the virtual view against the simulator's ground truth, with baselines through the same path.

For every test sample the source clip is prepared for the target camera as the node does it
(offline_training.training.batches.target_view) and each method renders the target view through the engine
interface (docs/DESIGN.md contract 3):

    model        the network (--model DIR, torch engine)
    pushpull     warp + the warp engine's push-pull hole filling (no network; the main row of --engine warp)
    warp         baseline: the raw warp, holes left black
    telea        baseline: warp + OpenCV Telea inpainting (the warp engine with inpaint="telea")
    no-experts   baseline: the same network with the expert FFNs and the interaction-aware attention switched off
                 at inference (route weights and interaction masks withheld); needs --model

Metrics (offline_training/metrics.py) per sample, then averaged over samples: PSNR and SSIM overall; on the routed
copy / repair / inpaint regions (the model's router on the warped clip, latent routes upsampled to pixels; only with
--model); on disoccluded pixels (target pixels the warp did not reach); temporal flicker; LPIPS when available.
For depth as real cameras give it, `--depth-model stereo|mono` replaces the source depth with a sensor-like one
(model.depth_sensor; the sample's stored `src_depth_sensor` when it was synthesised with that model) and adds:
coverage (share of target pixels in the warp mask), PSNR on covered pixels (the mask), on the depth-edge band
(target pixels within `EDGE_BAND_PX` of a true depth edge) and ghosting (offline_training.metrics.ghosting: % of
pixels showing warped foreground colour where the truth is background).
With the robot layer (`--robot-layer auto|on|off`; auto: when the samples carry the robot state of contract 6 and
the simulator's robot masks) the main method also runs on the robot-aware view, made frame by frame by the node's
`embody4d_ros.robot_layer.RobotLayer` from the sample's joint states, robot model reference and T_src_base (fed as
/joint_states and a /tf_static link): rows `<main>+robot` (with the static-scene memory, as the node runs it) and
`<main>+robot-no-memory`. Every row then also gets PSNR/SSIM on the robot (the simulator's robot mask in the target
view), the robot silhouette IoU of its view (where the view draws the robot: the warped source robot mask for the plain
views, the drawn robot for the robot-aware ones, against the simulator's), PSNR on the disoccluded background
(`disoccluded_bg`: target pixels off the robot that the plain warp did not reach) and behind the robot
(`behind_robot`: target pixels off the robot whose surface the source would see but for the robot: where the
static-scene memory can help, `offline_training.metrics.hidden_by_robot`); OUT/results.md adds a table per robot.
Writes OUT/results.md (table), OUT/results.json (per sample and mean) and OUT/images/*.png (side by side: source,
warp, each method, ground truth, at the middle frame).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from model.clips import ClipRule
from model.depth_sensor import DEPTH_MODELS, warp_settings
from model.engines.base import Engine, GenerationRequest
from model.geometry import WarpSettings
from model.geometry.depth_repair import near_depth_step
from offline_training.data import ROBOT_FIELDS
from offline_training.metrics import (
    flicker,
    ghosting,
    hidden_by_robot,
    load_lpips,
    psnr,
    silhouette_iou,
    ssim,
    ssim_map,
)
from offline_training.synth import add_config_arguments, config_from_args, option
from offline_training.training.batches import DEPTH_ALIGNS, source_depth, target_view

BASELINES = ("warp", "telea", "pushpull", "no-experts")
REGIONS = ("copy", "repair", "inpaint", "disoccluded", "covered", "edge")
ROBOT_COLUMNS = ("psnr_robot", "ssim_robot", "iou_robot", "psnr_disoccluded_bg", "psnr_behind_robot")
# the robot-aware rows of the main method: name suffix -> the robot layer's static-scene memory on or off
ROBOT_VIEWS = {"+robot": True, "+robot-no-memory": False}
# the source camera's optical frame the sample's T_src_base is fed under, and the frame period of the joint states
_SOURCE_FRAME = "source_optical_frame"
_FRAME_NS = 100_000_000
# the depth-edge band of the edge-band PSNR, in pixels at 320 wide (scaled with the image width)
EDGE_BAND_PX = 2


@dataclasses.dataclass
class EvalConfig:
    """What `embody4d eval` measures; every field is also a command-line option."""

    data: str = option("", "test dataset directory (embody4d synth --split test)", required=True)
    out: str = option("", "output directory: results.md, results.json, images/", required=True)
    model: str = option("", "model directory (OUT/model of embody4d train); evaluated as 'model'")
    engine: str = option(
        "torch", "engine of the main method: torch (needs --model) or warp (no network)", choices=("torch", "warp")
    )
    baselines: str = option("warp,telea,no-experts", f"comma-separated baselines among {BASELINES} ('' for none)")
    mode: str = option(
        "clip",
        "clip: one generation per clip; image: one per frame, as the node's image mode",
        choices=("clip", "image"),
    )
    max_samples: int = option(0, "evaluate the first N samples (0 = all)")
    frames: int = option(0, "frames per clip from the start of each sample, 4k+1 (0 = all)")
    steps: int = option(0, "sampler steps of the network (0 = the model's default)")
    seed: int = option(0, "noise seed of the network")
    images: int = option(4, "side-by-side PNGs for the first N samples")
    num_threads: int = option(0, "torch CPU threads (0 = torch's default)")
    device: str = option("cpu", "torch device of the network (cpu, cuda)")
    depth_model: str = option(
        "clean",
        "source depth: the simulator's (clean), a stereo IR camera's (stereo, RealSense "
        "D4xx-like) or a monocular estimate's (mono); model.depth_sensor",
        choices=DEPTH_MODELS,
    )
    robot_layer: str = option(
        "auto",
        "also run the main method on the robot-aware view (embody4d_ros.robot_layer): on, off, or auto (when the "
        "samples carry the robot state and robot masks)",
        choices=("auto", "on", "off"),
    )
    depth_align: str = option(
        "none",
        "mono depth: left as estimated (none) or aligned in inverse depth to the clean depth on the "
        "robot's pixels, as the node aligns it to the robot layer's render (robot); model.depth_align",
        choices=DEPTH_ALIGNS,
    )

    def __post_init__(self) -> None:
        if not self.data or not self.out:
            raise ValueError("--data DIR and --out DIR are required")
        if self.engine == "torch" and not self.model:
            raise ValueError("--engine torch needs --model DIR (or use --engine warp for the network-free engine)")
        unknown = set(self.baseline_list) - set(BASELINES)
        if unknown:
            raise ValueError(f"unknown baselines {sorted(unknown)}; choose among {BASELINES}")
        if self.engine == "warp" and "pushpull" in self.baseline_list:
            raise ValueError("--engine warp is the pushpull row already: drop pushpull from --baselines")
        if "no-experts" in self.baseline_list and not self.model:
            raise ValueError("the no-experts baseline ablates a network: give --model DIR or drop it from --baselines")
        if self.frames and not ClipRule().is_valid(self.frames):
            raise ValueError(f"--frames must be 4k+1, got {self.frames}")

    @property
    def baseline_list(self) -> list[str]:
        return [b.strip() for b in self.baselines.split(",") if b.strip()]


class RawWarpEngine(Engine):
    """The warp alone: holes stay black (the 'warp only' row)."""

    name = "raw-warp"

    def generate(self, request: GenerationRequest) -> np.ndarray:
        return np.where(request.warp_mask[..., None], request.warped_rgb, 0).astype(np.uint8)


def ablated_engine(model: str, steps: int, num_threads: int | None, device: str = "cpu") -> Engine:
    """The torch engine with experts and interaction-aware attention switched off (same weights)."""
    from model.engines.torch_engine import TorchEngine
    from model.pipeline import Embody4DPipeline

    pipeline = Embody4DPipeline.from_pretrained(model)
    engine = TorchEngine(
        pipeline=pipeline,
        steps=steps or pipeline.settings.num_inference_steps,
        num_threads=num_threads,
        use_experts=False,
        use_interaction=False,
        device=device,
    )
    engine.name = "no-experts"
    return engine


def build_engines(config: EvalConfig) -> tuple[dict[str, Engine], Any]:
    """Method name -> engine, and the main model's pipeline (None without --model)."""
    from model.engines.warp import WarpEngine

    engines: dict[str, Engine] = {}
    pipeline = None
    if config.model:
        from model.engines.torch_engine import TorchEngine
        from model.pipeline import Embody4DPipeline

        pipeline = Embody4DPipeline.from_pretrained(config.model)
    if config.engine == "torch":
        assert pipeline is not None  # EvalConfig requires --model for the torch engine
        engines["model"] = TorchEngine(
            pipeline=pipeline,
            steps=config.steps or pipeline.settings.num_inference_steps,
            num_threads=config.num_threads or None,
            device=config.device,
        )
    else:
        engines["pushpull"] = WarpEngine()
    for name in config.baseline_list:
        engines[name] = {
            "warp": RawWarpEngine,
            "telea": lambda: WarpEngine(inpaint="telea"),
            "pushpull": WarpEngine,
            "no-experts": lambda: ablated_engine(config.model, config.steps, config.num_threads or None, config.device),
        }[name]()
    return engines, pipeline


def check_resolution(pipeline: Any, data_hw: tuple[int, int], model: str) -> None:
    """Refuse a model whose preset resolution differs from the data's: the engine would resize silently and the
    numbers would measure the resampling, not the model."""
    model_hw = (pipeline.settings.height, pipeline.settings.width)
    if tuple(data_hw) != model_hw:
        raise ValueError(
            f"model {model} works at {model_hw[0]}x{model_hw[1]} but the test data is "
            f"{data_hw[0]}x{data_hw[1]}: evaluate on data synthesised at the model's resolution "
            f"(embody4d synth --split test --height {model_hw[0]} --width {model_hw[1]})"
        )


def route_regions(pipeline: Any, request: GenerationRequest) -> dict[str, np.ndarray]:
    """Pixel masks (T, H, W) bool of the router's copy / repair / inpaint routes for a request whose length the VAE
    accepts (4k+1), on the warped frames as the network sees them (the model's condition_fill)."""
    import torch

    from model.conditioning import conditioning_frames
    from model.engines.processing import masked_coverage, to_network_frames
    from model.experts import ROUTES
    from model.routing import to_latent_grid

    size = tuple(request.target_hw)
    with torch.inference_mode():
        seen = conditioning_frames(
            request.warped_rgb, request.warp_mask, request.warped_depth, pipeline.settings.condition_fill
        )
        warped = to_network_frames(seen, size, torch.float32, pipeline.device)
        coverage = masked_coverage(request)
        z_warp = pipeline.vae.encode_video(warped)
        m = to_latent_grid(
            to_network_frames(coverage, size, torch.float32, pipeline.device),
            tuple(z_warp.shape[-2:]),
            pipeline.vae.clip_rule,
        )
        routes = pipeline.router.route_map(pipeline.router(z_warp, m), m)[0].cpu().numpy()  # (F, h, w)
    t = np.arange(request.num_frames)
    per_frame = routes[pipeline.vae.clip_rule.latent_index(t)]
    scale = size[0] // routes.shape[1]
    pixels = per_frame.repeat(scale, axis=1).repeat(scale, axis=2)
    return {name: pixels == ROUTES.index(name) for name in ("copy", "repair", "inpaint")}


def edge_band(depth: np.ndarray) -> np.ndarray:
    """(T, H, W) bool: pixels within EDGE_BAND_PX (at 320 wide) of a depth step (> 5 %) of the true depth (T, H, W)."""
    radius = max(1, round(EDGE_BAND_PX * depth.shape[-1] / 320))
    return np.stack([near_depth_step(d, 0.05, radius) for d in depth])


def has_robot_state(sample: dict[str, Any]) -> bool:
    """Whether a sample carries what the robot-aware evaluation needs: the robot state (contract 6) and the
    simulator's robot-only masks."""
    return all(k in sample for k in (*ROBOT_FIELDS, "src_robot_mask", "tgt_robot_mask"))


def stack_requests(parts: list[GenerationRequest]) -> GenerationRequest:
    """One clip request from per-frame requests (the robot layer makes views frame by frame, as the node does)."""
    first = parts[0]
    arrays: dict[str, Any] = {
        f.name: np.concatenate([getattr(p, f.name) for p in parts])
        for f in dataclasses.fields(first)
        if isinstance(getattr(first, f.name), np.ndarray)
    }
    return dataclasses.replace(first, **arrays)


def robot_aware_request(clip: dict[str, Any], scene_memory: bool) -> tuple[GenerationRequest, np.ndarray]:
    """The robot-aware view of a sample's clip as the node makes it, and where it draws the robot (T, h, w) bool.

    A fresh `RobotLayer` gets the sample's robot model (`robot_model_from_reference`), the base in the source camera
    as a /tf_static link and each frame's joint state stamped like the frame, then makes the frames in order (so
    the static-scene memory, when on, sees the clip's earlier frames)."""
    from embody4d_ros.robot_layer import RobotLayer, RobotLayerConfig
    from offline_training.sim.robot_reference import robot_model_from_reference

    model = robot_model_from_reference(clip["robot_model"])
    layer = RobotLayer(RobotLayerConfig(enable="true", scene_memory=scene_memory))
    layer.set_model(model, f"the sample's robot {clip['robot_model']}")  # MJCF robots have no URDF
    layer.add_transform(_SOURCE_FRAME, model.root_link, np.asarray(clip["T_src_base"], float), 0, static=True)
    out_hw = clip["tgt_rgb"].shape[1:3]
    parts = []
    for t in range(len(clip["src_rgb"])):
        stamp = t * _FRAME_NS
        layer.add_joint_state(stamp, clip["joint_names"], clip["joint_positions"][t])
        view = layer.virtual_view(
            clip["src_rgb"][t],
            clip["src_depth"][t],
            clip["K_src"],
            _SOURCE_FRAME,
            stamp,
            clip["T_tgt_src"][t],
            out_hw,
            K_dst=clip["K_tgt"],
            caption=clip["caption"],
        )
        if view is None:
            raise RuntimeError(f"the robot layer did not draw frame {t} ({dict(layer.counters)}); see the log above")
        parts.append(view.request)
    request = stack_requests(parts)
    assert request.target_interaction is not None  # the robot layer's interaction mask: the drawn robot
    return request, request.target_interaction > 0.5


def plain_robot_silhouette(clip: dict[str, Any], settings: WarpSettings) -> np.ndarray:
    """Where the plain view shows the robot (T, h, w) bool: the source's robot pixels, warped like the image."""
    robot_only = dict(clip, src_mask=clip["src_robot_mask"])
    interaction = target_view(robot_only, settings).request.target_interaction
    assert interaction is not None  # target_view warps the source mask
    return interaction > 0.5


def sample_metrics(
    pred: np.ndarray,
    truth: np.ndarray,
    regions: dict[str, np.ndarray],
    lpips_fn,
    request: GenerationRequest,
    truth_depth: np.ndarray,
) -> dict[str, float]:
    if request.warped_depth is None:
        raise ValueError("the ghosting metric needs the warp's depth: build the request with `warped_depth`")
    values = ssim_map(pred, truth)
    row = {
        "psnr": psnr(pred, truth),
        "ssim": ssim(pred, truth, precomputed=values),
        "flicker": flicker(pred, truth),
        "coverage": float(request.warp_mask.mean()),
        "ghosting": ghosting(pred, truth, request.warped_rgb, request.warped_depth, truth_depth),
    }
    for name, region in regions.items():
        row[f"psnr_{name}"] = psnr(pred, truth, region)
        row[f"ssim_{name}"] = ssim(pred, truth, region, precomputed=values)
    if lpips_fn is not None:
        row["lpips"] = lpips_fn(pred, truth)
    return row


def _label(image: np.ndarray, text: str) -> np.ndarray:
    out = image.copy()
    scale = max(0.3, image.shape[1] / 400)
    cv2.putText(out, text, (3, int(14 * scale) + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (3, int(14 * scale) + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def side_by_side(path: Path, panels: dict[str, np.ndarray]) -> None:
    """One row of labelled frames (H, W, 3) uint8, written as PNG."""
    row = np.concatenate([_label(p, name) for name, p in panels.items()], axis=1)
    cv2.imwrite(str(path), cv2.cvtColor(row, cv2.COLOR_RGB2BGR))


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return "inf" if math.isinf(value) else f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


def _mean_rows(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Per-metric NaN-aware means of result rows (NaN when a metric is NaN in every row)."""
    keys = [k for k in rows[0] if k not in ("sample", "method", "robot")]
    return {
        k: float(np.nanmean([r[k] for r in rows])) if not all(math.isnan(r[k]) for r in rows) else float("nan")
        for k in keys
    }


def markdown_table(means: dict[str, dict[str, float]], notes: list[str]) -> str:
    columns = ["psnr", "ssim", *[f"psnr_{r}" for r in REGIONS], "ssim_disoccluded", "coverage", "ghosting", "flicker"]
    if any("lpips" in row for row in means.values()):
        columns.append("lpips")
    if any("iou_robot" in row for row in means.values()):
        columns += ROBOT_COLUMNS
    lines = ["| method | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for method, row in means.items():
        lines.append(f"| {method} | " + " | ".join(_fmt(row.get(c, float("nan"))) for c in columns) + " |")
    return "\n".join(lines + [""] + [f"- {n}" for n in notes]) + "\n"


def robot_table(rows: list[dict[str, Any]]) -> str:
    """Per robot (the samples' `meta.robot`) and method: sample count and the robot columns (empty without them)."""
    rows = [r for r in rows if "iou_robot" in r]
    if not rows:
        return ""
    lines = [
        "| robot | method | samples | " + " | ".join(ROBOT_COLUMNS) + " |",
        "|---" * (len(ROBOT_COLUMNS) + 3) + "|",
    ]
    for robot in sorted({r["robot"] for r in rows}):
        for method in dict.fromkeys(r["method"] for r in rows):
            mine = [r for r in rows if r["robot"] == robot and r["method"] == method]
            means = _mean_rows(mine)
            values = " | ".join(_fmt(means[c]) for c in ROBOT_COLUMNS)
            lines.append(f"| {robot} | {method} | {len(mine)} | {values} |")
    return "\n".join(lines) + "\n"


def evaluate(config: EvalConfig) -> dict[str, Any]:
    """Run every method over the test samples; returns {"mean": {method: {metric: value}}, "samples": [...],
    "notes"}."""
    from tqdm import tqdm

    from offline_training.data import open_dataset

    if config.num_threads:
        import torch

        torch.set_num_threads(config.num_threads)
    samples = open_dataset(config.data)
    if len(samples) == 0:
        raise ValueError(f"{config.data} has no samples")
    engines, pipeline = build_engines(config)
    first = samples[0]
    if pipeline is not None:
        check_resolution(pipeline, first["tgt_rgb"].shape[1:3], config.model)
    lpips_fn, lpips_note = load_lpips()
    notes = [n for n in [lpips_note] if n]
    if pipeline is None:
        notes.append("routed-region columns need the model's router (--model): n/a")
    if "no-experts" in engines:
        notes.append(
            "no-experts: the same weights with experts and interaction attention switched off at inference, "
            "not a separately trained model"
        )
    use_robot = config.robot_layer == "on" or (config.robot_layer == "auto" and has_robot_state(first))
    if use_robot and not has_robot_state(first):
        raise ValueError(
            f"--robot-layer on needs samples with the robot state and robot masks ({', '.join(ROBOT_FIELDS)}, "
            f"src_robot_mask, tgt_robot_mask); {config.data} has none: synthesise it again with this version"
        )
    main = "model" if config.engine == "torch" else "pushpull"
    if use_robot:
        notes.append(
            f"{main}+robot: the {main} engine on the robot-aware view (embody4d_ros.robot_layer, static-scene memory "
            f"on); {main}+robot-no-memory: the same without the memory. iou_robot: the view's robot silhouette "
            "against the simulator's; psnr_robot/ssim_robot on the simulator's robot mask in the target view; "
            "disoccluded_bg: off the robot and not reached by the plain warp; behind_robot: off the robot, where the "
            "source would see the surface but for the robot (what the scene memory can fill)"
        )
    out = Path(config.out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    count = len(samples) if not config.max_samples else min(config.max_samples, len(samples))
    rows: list[dict[str, Any]] = []
    for i in tqdm(range(count), desc="eval", unit="sample"):
        sample = samples[i]
        frames = config.frames or sample["tgt_rgb"].shape[0]
        per_frame = ("src_rgb", "src_depth", "src_mask", "tgt_rgb", "T_tgt_src", "src_robot_mask", "joint_positions")
        clip = {k: (v[:frames] if k in per_frame else v) for k, v in sample.items()}
        seed = config.seed * 1_000_003 + i
        clip["src_depth"] = source_depth(clip, config.depth_model, seed, config.depth_align)[:frames]
        settings = warp_settings(config.depth_model, clip["K_src"], clip["src_depth"].shape[-1])
        request = target_view(clip, settings).request
        truth = clip["tgt_rgb"]
        # image mode: every frame is its own generation, as the node's image mode runs
        parts = [request] if config.mode == "clip" else [request.frames(t, t + 1) for t in range(frames)]
        regions = {}
        if pipeline is not None:
            routes = [route_regions(pipeline, part) for part in parts]
            regions = {name: np.concatenate([r[name] for r in routes]) for name in routes[0]}
        regions["disoccluded"] = ~request.warp_mask
        regions["covered"] = request.warp_mask
        regions["edge"] = edge_band(clip["tgt_depth"][:frames])
        outputs = {name: np.concatenate([engine.generate(part) for part in parts]) for name, engine in engines.items()}
        requests = {name: request for name in outputs}
        silhouettes: dict[str, np.ndarray] = {}
        if use_robot:
            truth_robot = sample["tgt_robot_mask"][:frames] > 0
            regions["robot"] = truth_robot
            regions["disoccluded_bg"] = ~request.warp_mask & ~truth_robot
            regions["behind_robot"] = ~truth_robot & np.stack(
                [
                    hidden_by_robot(
                        clip["tgt_depth"][t],
                        clip["src_depth"][t],
                        clip["src_robot_mask"][t] > 0,
                        clip["K_tgt"],
                        clip["K_src"],
                        np.linalg.inv(clip["T_tgt_src"][t]),
                    )
                    for t in range(frames)
                ]
            )
            silhouettes = dict.fromkeys(outputs, plain_robot_silhouette(clip, settings))
            for suffix, memory in ROBOT_VIEWS.items():
                robot_request, silhouettes[main + suffix] = robot_aware_request(clip, memory)
                robot_parts = (
                    [robot_request]
                    if config.mode == "clip"
                    else [robot_request.frames(t, t + 1) for t in range(frames)]
                )
                outputs[main + suffix] = np.concatenate([engines[main].generate(part) for part in robot_parts])
                requests[main + suffix] = robot_request
        for name, pred in outputs.items():
            row = {"sample": i, "method": name, "robot": sample["meta"].get("robot", "")}
            row |= sample_metrics(pred, truth, regions, lpips_fn, requests[name], clip["tgt_depth"][:frames])
            if name in silhouettes:
                row["iou_robot"] = silhouette_iou(silhouettes[name], regions["robot"])
            rows.append(row)
        if i < config.images:
            mid = frames // 2
            side_by_side(
                out / "images" / f"sample-{i:04d}.png",
                {
                    "source": clip["src_rgb"][mid],
                    "warp": RawWarpEngine().generate(request)[mid],
                    **{name: pred[mid] for name, pred in outputs.items()},
                    "ground truth": truth[mid],
                },
            )
    means = {
        name: _mean_rows([r for r in rows if r["method"] == name]) for name in dict.fromkeys(r["method"] for r in rows)
    }
    notes.append(
        f"{count} samples from {config.data}, {frames} frames each, {config.mode} mode, "
        f"{config.depth_model} source depth; PSNR in dB, flicker in grey levels (lower is better); "
        "disoccluded = target pixels the warp did not reach, covered = the warp mask, edge = within 2 px (at "
        "320 wide) of a true depth edge; ghosting in % of pixels (lower is better)"
    )
    result = {"mean": means, "samples": rows, "notes": notes, "config": dataclasses.asdict(config)}
    (out / "results.json").write_text(json.dumps(result, indent=1))
    (out / "results.md").write_text(markdown_table(means, notes) + "\n" + robot_table(rows))
    for engine in engines.values():
        engine.close()
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, EvalConfig)


def run(args: argparse.Namespace) -> int:
    result = evaluate(config_from_args(EvalConfig, args))
    print(markdown_table(result["mean"], result["notes"]) + "\n" + robot_table(result["samples"]))
    return 0
