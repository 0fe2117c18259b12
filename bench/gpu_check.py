"""One prepared device run: everything the project wants to know from a lent GPU, time-boxed, written as it goes.

    python bench/gpu_check.py --out $OUT --budget-s 540        (one H200: the issue's 9 minutes)
    python bench/gpu_check.py --out OUT --smoke                 (CPU, tiny sizes, seconds: the test suite)

Sections, in this order (each gets a share of the time left when it starts, unused time passes on; a case that
would not fit is skipped and says so; OUT/gpu_check.json and OUT/gpu_check.md are rewritten after every case, so a
run killed by its timeout still returns what it measured):

    warp         the torch warp (CUDA) against the numba warp (CPU): parity (colour, depth, mask, coverage) and
                 speed at 480x640 and 720x1280, fp32 images; torch timed with NumPy in and out and GPU-resident
    5b           `trajectorycrafter-5b` with random weights at 384x672 in bf16: image mode and 49-frame clips at
                 1/2/4 steps (the preset's sampler and guidance), peak memory; one training step (stage 1, fp32
                 master weights, bf16 autocast, gradient checkpointing, AdamW): time and peak memory; what
                 torch.compile (each transformer block compiled) gains on one denoiser call, and its compile time
    engine       the torch engine in bf16 for the tiny and base presets, image and clip mode, 1/2/4 steps
    small-train  training-step throughput of the `small` preset (stage1 and vae, batch 64 / 32, bf16 autocast): the
                 GPU-bound rate that offline_training/recipes/gpu_train.py's data pipeline has to feed
    node         the node's runtime per 480x640 frame (VirtualCameraRuntime: warp + engine + publish), warp engine
                 and torch engine (shipped tiny weights, CUDA, bf16)
    robot        the robot layer (issue 16, `model.robot.gpu_check_case(device, smoke) -> dict`): thread-CPU ms per
                 480x640 frame of each stage (it runs on the CPU); a module without the hook is skipped with the reason

--smoke runs every section's code on the CPU at tiny sizes: a tiny-based preset at 32x48 stands in for tiny, base and
5b, warps at 48x64, two steps, torch.compile with the "eager" backend (dynamo only).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]  # run as a script: the repository and bench/ (bench_warp.scene)

import numpy as np  # noqa: E402
import torch  # noqa: E402

# run order and share of the remaining time
SECTIONS: dict[str, float] = {"warp": 0.08, "5b": 0.45, "engine": 0.2, "small-train": 0.07, "node": 0.15, "robot": 0.05}
STEPS = (1, 2, 4)


class OutOfTime(Exception):
    """The section's time is up before this case."""


@dataclasses.dataclass
class Settings:
    device: str
    dtype: torch.dtype
    smoke: bool
    work: Path

    def preset(self, name: str) -> str:
        """A preset name, or in smoke mode a tiny-based stand-in at 32x48 with 5-frame windows (same code path)."""
        if not self.smoke:
            return name
        from offline_training.training.toy import toy_preset

        return toy_preset(str(self.work / "smoke_preset.json"))

    def sync(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()

    def reset_peak(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

    def peak_gib(self) -> float | None:
        return round(torch.cuda.max_memory_allocated() / 2**30, 2) if self.device == "cuda" else None


class Report:
    """gpu_check.json and gpu_check.md under `out`, rewritten after every change."""

    def __init__(self, out: Path, meta: dict[str, Any]) -> None:
        self.out = out
        self.data: dict[str, Any] = {"meta": meta, "sections": {}}
        out.mkdir(parents=True, exist_ok=True)

    def section(self, name: str) -> dict[str, Any]:
        return self.data["sections"].setdefault(name, {"status": "running", "rows": [], "notes": []})

    def add(self, name: str, row: dict[str, Any]) -> None:
        self.section(name)["rows"].append(row)
        self.write()

    def note(self, name: str, text: str) -> None:
        self.section(name)["notes"].append(text)
        self.write()

    def finish(self, name: str, status: str, seconds: float, reason: str = "") -> None:
        section = self.section(name)
        section.update(status=status, seconds=round(seconds, 1), **({"reason": reason} if reason else {}))
        self.write()

    def write(self) -> None:
        for name, text in (
            ("gpu_check.json", json.dumps(self.data, indent=1, default=str)),
            ("gpu_check.md", self.markdown()),
        ):
            tmp = self.out / f".{name}.tmp"
            tmp.write_text(text)
            tmp.replace(self.out / name)

    def markdown(self) -> str:
        meta = self.data["meta"]
        lines = [
            "# gpu_check",
            "",
            f"`{meta['command']}`",
            "",
            f"{meta['date']}; {meta['device']}; torch {meta['torch']} (CUDA {meta['cuda']}); "
            f"{meta['cpus']} CPUs, load {meta['load']}; budget {meta['budget_s']} s"
            + (f"; note: {meta['note']}" if meta.get("note") else ""),
            "",
        ]
        for name, section in self.data["sections"].items():
            lines += [f"## {name} ({section['status']}, {section.get('seconds', '?')} s)", ""]
            if section.get("reason"):
                lines += [section["reason"], ""]
            tables: list[list[dict[str, Any]]] = []  # consecutive rows with the same columns share a table
            for row in section["rows"]:
                if tables and list(tables[-1][0]) == list(row):
                    tables[-1].append(row)
                else:
                    tables.append([row])
            for rows in tables:
                lines += ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
                lines += ["| " + " | ".join(_cell(value) for value in row.values()) + " |" for row in rows]
                lines.append("")
            lines += [f"- {n}" for n in section["notes"]] + ([""] if section["notes"] else [])
        return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


class Clock:
    """The run's deadline and the current section's."""

    def __init__(self, budget_s: float) -> None:
        self.end = time.monotonic() + budget_s
        self.section_end = self.end

    def start_section(self, share: float, later_shares: float) -> float:
        left = self.end - time.monotonic()
        self.section_end = time.monotonic() + left * share / (share + later_shares)
        return self.section_end - time.monotonic()

    def left(self) -> float:
        return min(self.section_end, self.end) - time.monotonic()

    def need(self, seconds: float, what: str) -> None:
        """OutOfTime unless `seconds` (an estimate of the next case) fit in what is left of the section."""
        if self.left() < seconds:
            raise OutOfTime(f"{what}: skipped, {max(self.left(), 0):.0f} s left in the section, needs ~{seconds:.0f} s")


def timed(fn: Callable[[], Any], settings: Settings, repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median and best wall milliseconds of `fn()` (device synchronised) after `warmup` untimed calls (one call
    each in smoke mode)."""
    repeats, warmup = (1, min(warmup, 1)) if settings.smoke else (repeats, warmup)
    for _ in range(warmup):
        fn()
    settings.sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        settings.sync()
        times.append((time.perf_counter() - start) * 1e3)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "n": repeats}


def build_pipeline(preset: str, settings: Settings, dtype: torch.dtype | None = None):
    """A randomly initialised pipeline, built directly on the device (a 5B model initialises in seconds there)."""
    from model.pipeline import Embody4DPipeline

    with torch.device(settings.device):
        pipeline = Embody4DPipeline.from_preset(preset)
    return pipeline.to(dtype or settings.dtype)


# ------------------------------------------------------------------------------------------------------- sections


def warp_section(report: Report, clock: Clock, settings: Settings) -> None:
    from bench_warp import scene

    from model.geometry import DEFAULT_SETTINGS, OrbitTarget, forward_warp_clip, target_transform
    from model.geometry.warp_torch import render_frames_torch  # the torch back end

    T = target_transform(OrbitTarget(yaw_deg=10.0, forward_m=0.1, pivot_m=1.5))
    sizes = [(48, 64)] if settings.smoke else [(480, 640), (720, 1280)]
    for height, width in sizes:
        clock.need(3 if settings.smoke else 8, f"warp {height}x{width}")
        image, depth, K = scene(height, width)
        image = (image.astype(np.float32) / 255.0)[None]
        depth = depth[None]
        numba = forward_warp_clip(image, depth, K, K, T, (height, width))
        gpu = forward_warp_clip(image, depth, K, K, T, (height, width), backend="torch")
        images, depths = torch.as_tensor(image, device=settings.device), torch.as_tensor(depth, device=settings.device)
        reliability = torch.ones_like(depths)  # clean depth: every pixel trusted
        numba_warp = lambda: forward_warp_clip(image, depth, K, K, T, (height, width))
        torch_warp = lambda: forward_warp_clip(image, depth, K, K, T, (height, width), backend="torch")
        row = {
            "size": f"{height}x{width}",
            "numba_ms": timed(numba_warp, settings, 10)["median_ms"],
            "torch_numpy_ms": timed(torch_warp, settings, 10)["median_ms"],
            "torch_resident_ms": timed(
                lambda: render_frames_torch(
                    images, depths, reliability, K, K, T[None], height, width, np.zeros(1, int), DEFAULT_SETTINGS
                ),
                settings,
                20,
            )["median_ms"],
            "mask_mismatch_px": int((numba.mask != gpu.mask).sum()),
            "max_colour_diff": float(np.abs(numba.image - gpu.image).max()),
            "max_depth_diff_m": float(np.abs(numba.depth - gpu.depth).max()),
            "max_coverage_diff": float(np.abs(numba.coverage - gpu.coverage).max()),
            "holes_pct": round(100 * float(1 - numba.mask.mean()), 1),
        }
        row["speedup_resident"] = row["numba_ms"] / row["torch_resident_ms"]
        report.add("warp", row)
    report.note(
        "warp",
        "numba: serial CPU kernel (validation included); torch_numpy: "
        "forward_warp_clip(backend='torch'), NumPy in and out; torch_resident: render_frames_torch on "
        "tensors already on the device",
    )


def engine_rows(
    report: Report,
    section: str,
    clock: Clock,
    settings: Settings,
    pipeline: Any,
    modes: list[tuple],
    estimate_s: Callable[[str, int], float],
) -> None:
    """Torch-engine latency rows (embody4d bench's request and timing) for each (mode, frames, repeats) and step."""
    from embody4d_ros.bench import synthetic_request, time_engines
    from model.engines.torch_engine import TorchEngine

    h, w = pipeline.settings.height, pipeline.settings.width
    for mode, frames, repeats in modes:
        repeats = 1 if settings.smoke else repeats
        request = synthetic_request(frames, h, w)
        warmed, measured = False, None  # measured: (steps, seconds per call) of the previous case
        for steps in STEPS[:2] if settings.smoke else STEPS:
            # a prior guess, or the previous case scaled by the step count (conservative: VAE time does not scale)
            per_call = max(estimate_s(mode, steps), measured[1] * steps / measured[0] if measured else 0.0)
            clock.need(per_call * (repeats + (0 if warmed else 1)), f"{section} {mode} {steps} steps")
            engine = TorchEngine(pipeline=pipeline, steps=steps, device=settings.device)
            settings.reset_peak()
            seconds = time_engines({"torch": engine}, request, repeats, 0 if warmed else 1)["torch"]
            warmed, measured = True, (steps, float(np.median(seconds)))
            per_frame = np.asarray(seconds) * 1e3 / frames
            report.add(
                section,
                {
                    "mode": mode,
                    "HxW": f"{h}x{w}",
                    "frames": frames,
                    "steps": steps,
                    "median_ms_per_frame": float(np.median(per_frame)),
                    "min_ms_per_frame": float(per_frame.min()),
                    "call_s": float(np.median(seconds)),
                    "repeats": repeats,
                    "peak_gib": settings.peak_gib(),
                },
            )


def engine_section(report: Report, clock: Clock, settings: Settings) -> None:
    for name in ("tiny", "base"):
        pipeline = build_pipeline(settings.preset(name), settings)
        window = pipeline.settings.window_frames
        # rough seconds per clip call (VAE encode + decode, then per step), to skip what won't fit
        fixed, per_step = {"tiny": (0.5, 0.05), "base": (8.0, 0.5)}[name]
        modes = [("image", 1, 10), ("clip", window, 2)]
        engine_rows(
            report,
            "engine",
            clock,
            settings,
            pipeline,
            modes,
            lambda mode, steps: 0.5 if settings.smoke or mode == "image" else fixed + per_step * steps,
        )
        report.note(
            "engine",
            f"{name}: {pipeline.settings.height}x{pipeline.settings.width}, clip = "
            f"{window} frames, {type(pipeline.scheduler).__name__}, guidance "
            f"{pipeline.settings.guidance_scale}, weights {str(settings.dtype)[6:]}",
        )
        del pipeline
        if settings.device == "cuda":
            torch.cuda.empty_cache()


def train_step(
    pipeline: Any, stage: str, batch: dict[str, Any], settings: Settings, steps: int, master_dtype: torch.dtype
) -> dict[str, Any]:
    """`steps` optimiser steps of `embody4d train`'s loss module (autocast bf16 on CUDA); time of the last one."""
    from offline_training.train import StageModule, TrainConfig, trainable_parameters

    pipeline.to(master_dtype)
    params = trainable_parameters(pipeline, stage)
    module = StageModule(pipeline, TrainConfig(stage=stage, data="-", out="-"))
    optimizer = torch.optim.AdamW(params.values(), lr=1e-5, fused=settings.device == "cuda")
    generator = torch.Generator().manual_seed(0)
    settings.reset_peak()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        with torch.autocast(settings.device, dtype=torch.bfloat16, enabled=settings.device == "cuda"):
            loss = module(batch, generator)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        settings.sync()
        times.append(time.perf_counter() - start)
    del optimizer
    return {
        "step_s": times[-1],
        "first_step_s": times[0],
        "loss": loss.item(),
        "peak_gib": settings.peak_gib(),
        "trained_params_M": round(sum(p.numel() for p in params.values()) / 1e6, 1),
    }


def training_batch(batch_size: int, frames: int, height: int, width: int, settings: Settings) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    video = lambda: (torch.rand(batch_size, 3, frames, height, width, generator=g) * 2 - 1).to(settings.device)
    mask = lambda: (torch.rand(batch_size, 1, frames, height, width, generator=g) > 0.3).float().to(settings.device)
    return {
        "source": video(),
        "target": video(),
        "warped": video(),
        "coverage": mask(),
        "interaction": mask(),
        "source_interaction": mask(),
        "captions": ["a robot arm picks up a cube"] * batch_size,
    }


def fivb_section(report: Report, clock: Clock, settings: Settings) -> None:
    started = time.perf_counter()
    pipeline = build_pipeline(settings.preset("trajectorycrafter-5b"), settings)
    settings.sync()
    parameters = sum(p.numel() for m in pipeline.models.values() for p in m.parameters())
    report.note(
        "5b",
        f"built on {settings.device} with random weights in {time.perf_counter() - started:.1f} s: "
        f"{parameters / 1e6:.1f} M parameters, {type(pipeline.scheduler).__name__}, guidance "
        f"{pipeline.settings.guidance_scale} (two transformer passes per step), caption embedding "
        "standing in for T5",
    )
    window = pipeline.settings.window_frames
    # rough seconds per call (VAE encode + decode, then per step with guidance), to skip what cannot fit
    estimate = {"image": (1.0, 0.3), "clip": (20.0, 2.5)}
    engine_rows(
        report,
        "5b",
        clock,
        settings,
        pipeline,
        [("image", 1, 3), ("clip", window, 1)],
        lambda mode, steps: 0.5 if settings.smoke else estimate[mode][0] + estimate[mode][1] * steps,
    )

    h, w = pipeline.settings.height, pipeline.settings.width
    clock.need(5 if settings.smoke else 45, "5b training step")
    pipeline.transformer.enable_gradient_checkpointing()
    batch = training_batch(1, window, h, w, settings)
    out_of_memory = ""
    try:
        row = train_step(pipeline, "stage1", batch, settings, 2, torch.float32)
        row["weights"] = "fp32 master, bf16 autocast"
    except torch.cuda.OutOfMemoryError as exc:
        out_of_memory = str(exc).splitlines()[0]
    if out_of_memory:  # outside the except block: its traceback (and the failed step's tensors) are released
        report.note(
            "5b",
            f"training step with fp32 master weights ran out of memory ({out_of_memory}); retried "
            "with bf16 weights and optimiser states",
        )
        for module in pipeline.models.values():
            module.zero_grad(set_to_none=True)
        torch.cuda.empty_cache()
        row = train_step(pipeline, "stage1", batch, settings, 2, torch.bfloat16)
        row["weights"] = "bf16 weights and AdamW states"
    report.add(
        "5b",
        {
            "mode": "train stage1",
            "HxW": f"{h}x{w}",
            "frames": window,
            "steps": "1 optimiser step",
            "gradient_checkpointing": True,
            **row,
        },
    )
    del batch
    pipeline.transformer.disable_gradient_checkpointing()
    pipeline.to(settings.dtype)
    for module in pipeline.models.values():
        module.eval()  # the training step left the transformer in train mode (mask dropout)
    compile_gain(report, clock, settings, pipeline)


def compile_gain(report: Report, clock: Clock, settings: Settings, pipeline: Any) -> None:
    """One denoiser call (image mode) eager, then with every transformer block compiled (regional compilation:
    one compile serves the identical blocks)."""
    clock.need(5 if settings.smoke else 60, "torch.compile")
    h, w = pipeline.settings.height, pipeline.settings.width
    batch = training_batch(1, 1, h, w, settings)
    with torch.no_grad():
        cond = pipeline.encode_conditions(
            batch["source"].to(settings.dtype),
            batch["warped"].to(settings.dtype),
            batch["coverage"].to(settings.dtype),
            captions=batch["captions"],
        )
        latents = torch.randn_like(cond.warped)
        t = torch.tensor(500.0, device=settings.device)
        call = lambda: pipeline.predict(latents, t, cond)
        eager = timed(call, settings, 10 if not settings.smoke else 2)
        started = time.perf_counter()
        backend = "eager" if settings.smoke else "inductor"
        for block in pipeline.transformer.transformer_blocks:
            block.compile(backend=backend)
        call()
        settings.sync()
        compile_s = time.perf_counter() - started
        compiled = timed(call, settings, 10 if not settings.smoke else 2)
    torch._dynamo.reset()  # the compiled blocks' caches would keep the 5B weights alive for the later sections
    report.add(
        "5b",
        {
            "mode": "denoiser call, image mode",
            "HxW": f"{h}x{w}",
            "frames": 1,
            "steps": 1,
            "eager_ms": eager["median_ms"],
            "compiled_ms": compiled["median_ms"],
            "compile_gain": eager["median_ms"] / compiled["median_ms"],
            "compile_s": compile_s,
            "backend": backend,
        },
    )


def small_train_section(report: Report, clock: Clock, settings: Settings) -> None:
    for stage, batch_size in (("stage1", 64), ("vae", 32)):
        clock.need(3 if settings.smoke else 10, f"small {stage}")
        pipeline = build_pipeline(settings.preset("small"), settings, torch.float32)
        h, w = pipeline.settings.height, pipeline.settings.width
        batch_size = 2 if settings.smoke else batch_size
        batch = training_batch(batch_size, 1, h, w, settings)
        steps = 2 if settings.smoke else 12
        row = train_step(pipeline, stage, batch, settings, steps, torch.float32)
        report.add(
            "small-train",
            {
                "stage": stage,
                "HxW": f"{h}x{w}",
                "batch": batch_size,
                "samples_per_s": batch_size / row["step_s"],
                **row,
            },
        )
    report.note(
        "small-train",
        "step_s is the last of the steps: forward, backward and AdamW, fp32 weights, bf16 "
        "autocast, data already on the device (no batch building)",
    )


def node_section(report: Report, clock: Clock, settings: Settings) -> None:
    from bench_warp import scene

    from embody4d_ros.conversions import Frame
    from embody4d_ros.params import validate
    from embody4d_ros.runtime import VirtualCameraRuntime
    from model.engines import create_engine

    height, width = (48, 64) if settings.smoke else (480, 640)
    rgb, depth, K = scene(height, width)
    frames, warmup = (1, 1) if settings.smoke else (60, 3)
    for name in ("warp", "torch"):
        clock.need(3 if settings.smoke else 15, f"node {name}")
        if name == "warp":
            engine = create_engine("warp")
        else:
            engine = create_engine("torch", device=settings.device)  # the shipped tiny weights
            engine.pipeline.to(settings.dtype)
        published: list[Any] = []
        runtime = VirtualCameraRuntime(validate({"engine": name}), published.append, engine=engine, log=lambda m: None)
        per_frame = []
        for i in range(frames + warmup):
            start = time.perf_counter()
            runtime.submit(
                Frame(rgb=rgb, depth=depth, K=K, stamp_ns=(i + 1) * 33_333_333, frame_id="camera_color_optical_frame")
            )
            runtime.process_next()
            if i >= warmup:
                per_frame.append((time.perf_counter() - start) * 1e3)
        stages = runtime.stats.summary()["latency_ms"]
        report.add(
            "node",
            {
                "engine": name,
                "HxW": f"{height}x{width}",
                "frames": frames,
                "published": len(published),
                "median_ms": statistics.median(per_frame),
                "max_ms": max(per_frame),
                **{
                    f"{stage}_p50_ms": round(s["p50"], 2)
                    for stage, s in stages.items()
                    if stage in ("warp", "engine", "publish")
                },
            },
        )
    report.note(
        "node",
        "per frame: submit + process_next in the caller's thread (no transport); the runtime warps "
        "with the numba CPU kernel; torch engine = shipped tiny weights in bf16, image mode",
    )


def robot_section(report: Report, clock: Clock, settings: Settings, module_name: str) -> str:
    """The robot layer's own case; returns a skip reason ("" when it ran)."""
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        return f"the robot layer does not import here ({module_name}: {exc}); issue 16 adds it"
    case = getattr(module, "gpu_check_case", None)
    if case is None:
        return f"{module_name} imports but has no gpu_check_case(device, smoke) -> dict to time"
    clock.need(3 if settings.smoke else 40, "robot layer")  # the Panda's meshes load, 6 frames x 5 are timed
    report.add("robot", case(settings.device, settings.smoke))
    report.note(
        "robot",
        "thread-CPU ms per frame of each stage of the robot layer (numba, on the CPU beside the GPU engine); "
        "layer_without_warp_ms is what the layer adds to the plain warp path (goal on the 2-core CPU: <= 15 ms)",
    )
    return ""


# ----------------------------------------------------------------------------------------------------------- main


def machine(settings: Settings) -> dict[str, Any]:
    cpu = f"CPU ({platform.processor() or platform.machine()})"
    info = {
        "device": torch.cuda.get_device_name() if settings.device == "cuda" else cpu,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load": round(os.getloadavg()[0], 1),
    }
    if settings.device == "cuda":
        try:
            query = ["nvidia-smi", "--query-gpu=driver_version,memory.total", "--format=csv,noheader"]
            info["driver"] = subprocess.run(query, capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            info["driver"] = "nvidia-smi not available"
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="directory for gpu_check.json and gpu_check.md ($OUT)")
    parser.add_argument("--budget-s", type=float, default=540.0, help="the whole run's time, seconds")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma list of {list(SECTIONS)}")
    parser.add_argument("--robot-module", default="model.robot", help="the robot layer's module (issue 16)")
    parser.add_argument("--note", default="", help="recorded with the results (e.g. what else ran on the machine)")
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny sizes: the same code path in seconds")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; choose among {list(SECTIONS)}")
    if not args.smoke and not torch.cuda.is_available():
        parser.error("no CUDA device is visible to torch: run with --smoke on a CPU")
    clock = Clock(args.budget_s)
    work = Path(tempfile.mkdtemp(prefix="gpu_check-"))
    settings = Settings(
        "cpu" if args.smoke else "cuda", torch.float32 if args.smoke else torch.bfloat16, args.smoke, work
    )
    import diffusers

    diffusers.utils.logging.set_verbosity_error()  # one "keep in float32" warning per cast model otherwise
    if settings.smoke:
        torch.set_num_threads(1)  # OpenMP threads stall for seconds on a shared CPU
    if settings.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    meta = {
        "command": " ".join(["python bench/gpu_check.py", *(argv if argv is not None else sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "budget_s": args.budget_s,
        "smoke": args.smoke,
        "note": args.note,
        **machine(settings),
    }
    report = Report(Path(args.out), meta)
    runners: dict[str, Callable[[Report, Clock, Settings], Any]] = {
        "warp": warp_section,
        "5b": fivb_section,
        "engine": engine_section,
        "small-train": small_train_section,
        "node": node_section,
        "robot": lambda r, c, s: robot_section(r, c, s, args.robot_module),
    }
    for i, name in enumerate(chosen):
        allowance = clock.start_section(SECTIONS[name], sum(SECTIONS[n] for n in chosen[i + 1 :]))
        started = time.monotonic()
        report.section(name)
        print(f"[gpu_check] {name}: {allowance:.0f} s", flush=True)
        try:
            reason = runners[name](report, clock, settings)
            report.finish(name, "skipped" if reason else "done", time.monotonic() - started, reason or "")
        except OutOfTime as exc:
            report.finish(name, "partial", time.monotonic() - started, str(exc))
        except Exception as exc:  # one failing section must not cost the others their time
            lines = traceback.format_exc().strip().splitlines()
            where = lines[-3].strip()
            report.finish(name, "error", time.monotonic() - started, f"{type(exc).__name__}: {exc} ({where})")
            traceback.print_exc()
        if settings.device == "cuda":
            torch.cuda.empty_cache()
    print(report.markdown(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
