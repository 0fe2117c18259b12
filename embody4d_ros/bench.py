"""`embody4d bench`: per-frame latency (median, p99) and throughput per engine, mode, resolution and step count.

    embody4d bench --preset tiny --engines torch,onnxruntime --modes image --resolutions 240x320 --steps 2

Engines run side by side in one process on the same requests, interleaved repeat by repeat so that a machine shared
with other jobs slows them alike. Network engines use one randomly initialised (seeded) model per mode, resolution and
step count (or --model); onnxruntime and tensorrt run a fresh export of it (`--export-root` keeps them). Latency is
the wall time of Engine.generate divided by the request's frames; throughput is frames per second over all repeats.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch and the model load only when the command runs
    from model.engines.base import Engine, GenerationRequest
    from model.pipeline import Embody4DPipeline

log = logging.getLogger(__name__)


@dataclass
class Result:
    """Timings of one engine on one configuration; latencies in ms per frame."""

    engine: str
    mode: str
    height: int
    width: int
    frames: int
    steps: int
    median_ms: float
    p99_ms: float
    fps: float
    detail: str


def synthetic_request(frames: int, height: int, width: int, seed: int = 0) -> GenerationRequest:
    """A textured scene with a hole band and an interaction region, (frames, height, width)."""
    from model.engines.base import GenerationRequest

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([(xx * 3) % 256, (yy * 5) % 256, ((xx + yy) * 2) % 256], -1).astype(np.uint8)
    rgb = np.stack([np.roll(base, 4 * t, axis=1) for t in range(frames)])
    rgb = np.clip(rgb.astype(np.int16) + rng.integers(-20, 20, rgb.shape), 0, 255).astype(np.uint8)
    mask = np.ones((frames, height, width), bool)
    mask[:, :, width // 2 : width // 2 + width // 10] = False
    region = np.zeros(mask.shape, np.float32)
    region[:, height // 3 : 2 * height // 3, width // 4 : width // 2] = 1.0
    return GenerationRequest(
        source_rgb=rgb,
        warped_rgb=rgb * mask[..., None],
        warp_mask=mask,
        coverage=mask.astype(np.float32),
        source_interaction=region,
        target_interaction=region,
        caption="robot arm grasps a red cube",
        seed=seed,
    )


def time_engines(
    engines: dict[str, Engine], request: GenerationRequest, repeats: int, warmup: int
) -> dict[str, list[float]]:
    """Seconds per generate call for each engine, interleaved repeat by repeat after `warmup` untimed calls each."""
    for engine in engines.values():
        for _ in range(warmup):
            engine.generate(request)
    times: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(repeats):
        for name, engine in engines.items():
            start = time.perf_counter()
            engine.generate(request)
            times[name].append(time.perf_counter() - start)
    return times


def summarise(
    name: str, seconds: list[float], frames: int, mode: str, hw: tuple[int, int], steps: int, detail: str
) -> Result:
    per_frame = np.asarray(seconds) * 1e3 / frames
    return Result(
        name,
        mode,
        hw[0],
        hw[1],
        frames,
        steps,
        float(np.median(per_frame)),
        float(np.percentile(per_frame, 99)),
        frames * len(seconds) / float(np.sum(seconds)),
        detail,
    )


def build_engines(
    names: list[str],
    pipeline: Embody4DPipeline,
    mode: str,
    hw: tuple[int, int],
    frames: int,
    steps: int,
    export_root: Path,
    threads: int,
    device: str,
) -> dict[str, Engine]:
    """The requested engines on one model at one configuration (exports written under export_root)."""
    from model.engines.base import EngineError, create_engine
    from model.engines.torch_engine import TorchEngine
    from model.export import export_model

    pipeline.settings.height, pipeline.settings.width = hw
    engines: dict[str, Engine] = {}
    export_dir = export_root / f"{mode}-{hw[0]}x{hw[1]}-f{frames}-s{steps}"
    for name in names:
        if name == "torch":
            engines[name] = TorchEngine(pipeline=pipeline, steps=steps, device=device)
            continue
        if name == "warp":
            engines[name] = create_engine("warp")
            continue
        if not (export_dir / "manifest.json").is_file():
            export_model(pipeline, export_dir, mode, *hw, steps=steps, frames=frames if mode == "clip" else None)
        options = {"num_threads": threads} if name == "onnxruntime" else {}
        try:
            engines[name] = create_engine(name, model_path=str(export_dir), steps=steps, **options)
        except EngineError as exc:
            log.error("bench: skipping engine %r: %s", name, exc)
    pipeline.to(device)
    return engines


def markdown(results: list[Result]) -> str:
    """A table; `speed-up` compares each engine with torch on the same configuration."""
    torch_ms = {(r.mode, r.height, r.width, r.frames, r.steps): r.median_ms for r in results if r.engine == "torch"}
    lines = [
        "| engine | mode | H×W | frames | steps | median ms/frame | p99 ms/frame | frames/s | speed-up vs torch "
        "| runs on |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        reference = torch_ms.get((r.mode, r.height, r.width, r.frames, r.steps))
        speedup = f"{reference / r.median_ms:.2f}×" if reference else "–"
        lines.append(
            f"| {r.engine} | {r.mode} | {r.height}×{r.width} | {r.frames} | {r.steps} | {r.median_ms:.1f} | "
            f"{r.p99_ms:.1f} | {r.fps:.2f} | {speedup} | {r.detail} |"
        )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", help="model directory (default: --preset with random weights)")
    source.add_argument("--preset", default="tiny")
    parser.add_argument(
        "--engines", default="torch,onnxruntime", help="comma list of warp, torch, onnxruntime, tensorrt"
    )
    parser.add_argument("--modes", default="image", help="comma list of image, clip")
    parser.add_argument("--resolutions", default="240x320,384x672", help="comma list of HxW")
    parser.add_argument("--steps", default="2", help="comma list of sampler step counts")
    parser.add_argument("--frames", type=int, help="clip mode frames (4k+1; default the model's window)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch and onnxruntime")
    parser.add_argument("--device", default="cpu", help="torch device for the torch engine (cpu, cuda)")
    parser.add_argument("--export-root", help="keep exports here (default: a temporary directory)")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    import torch

    from model.pipeline import Embody4DPipeline

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    names = [n for n in args.engines.split(",") if n]
    resolutions = [
        (int(r.lower().split("x")[0]), int(r.lower().split("x")[1])) for r in args.resolutions.split(",") if r
    ]
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="embody4d-bench-") as scratch:
        export_root = Path(args.export_root or scratch)
        for mode in args.modes.split(","):
            for hw in resolutions:
                for steps in (int(s) for s in args.steps.split(",")):
                    pipeline = (
                        Embody4DPipeline.from_pretrained(args.model)
                        if args.model
                        else Embody4DPipeline.from_preset(args.preset)
                    )
                    frames = 1 if mode == "image" else (args.frames or pipeline.settings.window_frames)
                    engines = build_engines(
                        names, pipeline, mode, hw, frames, steps, export_root, args.threads, args.device
                    )
                    request = synthetic_request(frames, *hw)
                    times = time_engines(engines, request, args.repeats, args.warmup)
                    for name, seconds in times.items():
                        engine = engines[name]
                        detail = {
                            "torch": f"torch {args.device}, {torch.get_num_threads()} threads",
                            "onnxruntime": f"{','.join(getattr(engine, 'providers', []))}, {args.threads} threads",
                        }.get(name, name)
                        results.append(summarise(name, seconds, frames, mode, hw, steps, detail))
                    print(markdown(results[-len(times) :]), flush=True)
                    for engine in engines.values():
                        engine.close()
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} CPUs, {gpu}; torch {torch.__version__}; "
        f"threads {args.threads}; repeats {args.repeats} after {args.warmup} warm-up; "
        f"1-min load average before {load_before:.1f}, after {os.getloadavg()[0]:.1f}"
    )
    print(markdown(results))
    return 0
