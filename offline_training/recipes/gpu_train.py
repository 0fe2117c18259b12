"""One lent GPU run: render training data on the machine's cores, train the `small` preset, return it.

    python -m offline_training.recipes.gpu_train render --work W --render-seconds 200 --num-workers 12
    python -m offline_training.recipes.gpu_train train  --work W --out $OUT --seconds 250 --num-workers 14
    python -m offline_training.recipes.gpu_train all    --work W --out $OUT ...      (render, then train)
    python -m offline_training.recipes.gpu_train all    --work W --out OUT --smoke    (CPU, seconds: CI)

render   `embody4d synth` into W/data: 16 validation samples (train robots, seed 2; at most VAL_SHARE of the time)
         first, then training samples (seed 0) until --render-seconds run out; the synth process is stopped there
         and its finished shards are the dataset (a partial dataset is readable). Both at 240x320, 9 frames, the
         held-out split's format.
train    `embody4d train`'s stages in one process, each time-boxed (--max-seconds): vae, estimator, stage1 (shares
         of --seconds in STAGE_SHARES), bf16 autocast through accelerate, batches built by --num-workers processes.
         Then the final model in fp16 safetensors (W/model_fp16), a validation table on the validation split
         (`embody4d eval` on the GPU against push-pull and Telea), and what comes back through OUT (at most 8 files of
         <= 16 MiB there): the model as a tar in parts model.tar.NN of <= 15 MiB, gpu_train.md (the summary and the
         validation table) and gpu_train_report.tar.gz (loss curves and logs of every stage, summaries, validation
         results and images). Reassemble the model with `cat model.tar.* | tar -x` (docs/GPU.md).

--smoke: the same stages on the CPU in seconds: the analytic toy scene stands in for MuJoCo (train and validation),
a tiny-based preset at 32x48, a few steps. The hyper-parameters below follow offline_training/recipes/train_tiny.sh,
scaled to GPU batches; docs/GPU.md says why the preset has the shape it has.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

PRESET = "small"
HEIGHT, WIDTH, NUM_FRAMES = 240, 320, 9
VAL_SAMPLES = 16
VAL_SHARE = 0.25  # of the render time at most for the validation samples: the training data gets the rest
PART_BYTES = 15 * 2**20  # model.tar parts: under the 16 MiB a file that comes back from the device may have
STAGE_SHARES = {"vae": 0.3, "estimator": 0.1, "stage1": 0.6}
# per stage: `embody4d train` options (steps is an upper bound: --max-seconds ends each stage)
STAGE_OPTIONS: dict[str, dict[str, Any]] = {
    "vae": dict(batch_size=32, lr=1e-3, warmup_steps=100, ema=0.999),
    "estimator": dict(batch_size=64, lr=1e-3, warmup_steps=20, pseudo4d_fraction=0.5),
    "stage1": dict(batch_size=64, lr=5e-4, warmup_steps=100, ema=0.999, pseudo4d_fraction=0.5),
}
SMOKE = dict(height=32, width=48, train_samples=4, val_samples=2, steps=2, batch_size=2)


def log(message: str) -> None:
    print(f"[gpu_train {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ------------------------------------------------------------------------------------------------------ render


def run_synth(options: list[str], deadline: float) -> dict[str, Any]:
    """`embody4d synth` in its own process group, stopped (with its worker processes) at `deadline` (time.time())."""
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    command = [sys.executable, "-m", "embody4d_ros.cli", "synth", *options]
    started = time.time()
    proc = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        proc.wait(timeout=max(deadline - time.time(), 1.0))
        finished = True
    except subprocess.TimeoutExpired:
        finished = False
        os.killpg(proc.pid, signal.SIGTERM)  # the group this call created: synth and its pool
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if finished and proc.returncode:
        raise RuntimeError(f"{' '.join(command)} failed with exit code {proc.returncode}")
    return {"finished": finished, "seconds": round(time.time() - started, 1), "process_group": proc.pid}


def render(work: Path, seconds: float, num_workers: int, smoke: bool) -> dict[str, Any]:
    """Validation then training data under work/data; returns sample counts and timings (also work/render.json)."""
    from offline_training.data import open_dataset

    data = work / "data"
    deadline = time.time() + seconds
    if smoke:
        from offline_training.training.toy import ToyDataset

        splits = (("val", SMOKE["val_samples"], 100), ("train", SMOKE["train_samples"], 0))
        for split, num_samples, first_index in splits:
            ToyDataset(
                str(data / split),
                num_samples=num_samples,
                num_frames=1,
                height=SMOKE["height"],
                width=SMOKE["width"],
                first_index=first_index,
            ).write()
        runs = {"val": {"finished": True}, "train": {"finished": True}}
    else:
        common = [
            "--split",
            "train",
            "--num-frames",
            str(NUM_FRAMES),
            "--height",
            str(HEIGHT),
            "--width",
            str(WIDTH),
            "--num-workers",
            str(num_workers),
            "--samples-per-shard",
            "4",
        ]
        log(
            f"render: {VAL_SAMPLES} validation samples (at most {VAL_SHARE:.0%} of the time), then training "
            f"samples until {seconds:.0f} s are up"
        )
        runs = {
            "val": run_synth(
                ["--out", str(data / "val"), "--num-samples", str(VAL_SAMPLES), "--seed", "2", *common],
                time.time() + VAL_SHARE * seconds,
            )
        }
        # far more samples than the time allows: the deadline ends it, its finished shards are the dataset
        runs["train"] = run_synth(
            ["--out", str(data / "train"), "--num-samples", "100000", "--seed", "0", *common], deadline
        )
    # a synth stopped before it wrote dataset.json left no dataset at all
    summary = {
        split: {
            **run,
            "samples": len(open_dataset(str(data / split))) if (data / split / "dataset.json").is_file() else 0,
        }
        for split, run in runs.items()
    }
    (work / "render.json").write_text(json.dumps(summary, indent=1))
    log(f"render: {summary}")
    return summary


# ------------------------------------------------------------------------------------------------------- train


def warm_warp_kernels() -> None:
    """Compile the CPU warp kernels once before the batch workers fork, so that each does not compile its own."""
    import numpy as np

    from model.geometry import forward_warp

    K = np.array([[8.0, 0, 3.5], [0, 8.0, 3.5], [0, 0, 1]])
    forward_warp(np.zeros((8, 8, 3), np.uint8), np.ones((8, 8), np.float32), K, K, np.eye(4), (8, 8))


def train_stages(
    work: Path, preset: str, seconds: float, num_workers: int, device: str, smoke: bool
) -> list[dict[str, Any]]:
    """vae -> estimator -> stage1, each from the previous stage's model, each stopped by its share of `seconds`."""
    from offline_training.train import TrainConfig, train

    train_data = work / "data" / "train"
    if not (train_data / "dataset.json").is_file() or not any(train_data.glob("shard-*.json")):
        raise RuntimeError(
            f"no training data was rendered into {train_data}: see the render phase's log (MuJoCo EGL, "
            "the robot assets in PYTHONPATH) or give it more --render-seconds"
        )
    warm_warp_kernels()
    summaries, init = [], ""
    for stage, share in STAGE_SHARES.items():
        options = dict(STAGE_OPTIONS[stage])
        if smoke:
            options.update(batch_size=SMOKE["batch_size"], steps=SMOKE["steps"])
        out = work / "runs" / stage
        shutil.rmtree(out, ignore_errors=True)  # a rerun of this recipe starts the stage afresh
        config = TrainConfig(
            stage=stage,
            data=str(train_data),
            out=str(out),
            preset=preset,
            init=init,
            frames=1,
            steps=options.pop("steps", 100_000),
            max_seconds=share * seconds,
            checkpoint_every=100_000,
            keep_checkpoints=1,
            num_workers=num_workers,
            mixed_precision="bf16" if device == "cuda" else "no",
            progress=False,
            **options,
        )
        log(f"train {stage}: up to {config.max_seconds:.0f} s, batch {config.batch_size}, lr {config.lr}")
        started = time.time()
        summary = train(config)
        summary["wall_s"] = round(time.time() - started, 1)
        log(f"train {stage}: {summary}")
        summaries.append(summary)
        init = summary["model"]
    return summaries


def export_fp16(model: Path, out: Path) -> dict[str, Any]:
    """A copy of model directory `model` with every floating-point weight in fp16 (loads into the fp32 model as is)."""
    import safetensors.torch

    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(model, out)
    parameters = 0
    for path in sorted(out.rglob("*.safetensors")):
        state = safetensors.torch.load_file(path)
        parameters += sum(t.numel() for t in state.values())
        safetensors.torch.save_file(
            {k: t.half() if t.is_floating_point() else t for k, t in state.items()}, path, metadata={"format": "pt"}
        )
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {"parameters": parameters, "mib": round(size / 2**20, 2)}


def validate(model: Path, data: Path, out: Path, device: str) -> dict[str, Any]:
    """`embody4d eval` of the model on the validation split, image mode, against the warp engines' hole filling."""
    from offline_training.evaluate import EvalConfig, evaluate

    return evaluate(
        EvalConfig(
            data=str(data),
            out=str(out),
            model=str(model),
            mode="image",
            baselines="pushpull,telea",
            device=device,
            images=4,
        )
    )


def pack_model(out: Path, work: Path, model: Path) -> list[Path]:
    """OUT/model.tar.NN: the model directory as a tar, in parts of <= PART_BYTES."""
    out.mkdir(parents=True, exist_ok=True)
    bundle = work / "model.tar"
    with tarfile.open(bundle, "w") as tar:
        tar.add(model, arcname="model")
    data = bundle.read_bytes()
    parts = []
    for i in range(0, len(data), PART_BYTES):
        parts.append(out / f"model.tar.{i // PART_BYTES:02d}")
        parts[-1].write_bytes(data[i : i + PART_BYTES])
    return parts


def pack_report(out: Path, work: Path) -> Path:
    """OUT/gpu_train_report.tar.gz: per stage train_log.csv, loss.png, summary.json; render.json, gpu_train.json,
    validation/."""
    report = out / "gpu_train_report.tar.gz"
    with tarfile.open(report, "w:gz") as tar:
        for stage in STAGE_SHARES:
            run = work / "runs" / stage
            for name in ("train_log.csv", "loss.png", "summary.json"):
                if (run / name).is_file():
                    tar.add(run / name, arcname=f"{stage}/{name}")
        for name in ("render.json", "gpu_train.json"):
            if (work / name).is_file():
                tar.add(work / name, arcname=name)
        if (work / "validation").is_dir():
            tar.add(work / "validation", arcname="validation")
    return report


def markdown(result: dict[str, Any]) -> str:
    from offline_training.evaluate import markdown_table

    lines = [
        f"# GPU training run ({result['date']}, {result['device']})",
        "",
        f"preset {result['preset']}; data: {result['render']}",
        "",
        f"training budget {result['train_seconds']:.0f} s",
        "",
        "| stage | steps | samples/s | final loss | wall s |",
        "|---|---:|---:|---:|---:|",
    ]
    for s in result["stages"]:
        rate = f"{s['samples_per_s']:.1f}" if s["samples_per_s"] else "n/a"
        lines.append(f"| {s['stage']} | {s['steps']} | {rate} | {s['final_loss']:.4f} | {s['wall_s']} |")
    lines += [
        "",
        f"fp16 model: {result['export']['parameters'] / 1e6:.2f} M parameters, {result['export']['mib']} MiB",
        "",
        "## Validation (train robots, new scenes; image mode)",
        "",
    ]
    validation = result["validation"]
    lines.append(
        markdown_table(validation["mean"], validation["notes"])
        if "mean" in validation
        else f"failed: {validation['error']}"
    )
    return "\n".join(lines)


def train_and_pack(
    work: Path, out: Path, preset: str, seconds: float, num_workers: int, device: str, smoke: bool
) -> dict[str, Any]:
    import torch

    started = time.time()
    stages = train_stages(work, preset, seconds, num_workers, device, smoke)
    model = work / "model_fp16"
    export = export_fp16(Path(stages[-1]["model"]), model)
    log(f"fp16 model: {export}")
    parts = pack_model(out, work, model)  # before the validation: the model comes back even if that fails
    try:
        validation = validate(model, work / "data" / "val", work / "validation", device)
        validation = {k: validation[k] for k in ("mean", "notes")}
    except Exception as exc:  # noqa: BLE001  (whatever breaks there, the trained model and its logs still return)
        validation = {"error": f"{type(exc).__name__}: {exc}"}
        log(f"validation failed: {validation['error']}")
    render_summary = json.loads((work / "render.json").read_text()) if (work / "render.json").is_file() else None
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "preset": preset,
        "smoke": smoke,
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "train_seconds": seconds,
        "render": render_summary,
        "stages": stages,
        "export": export,
        "validation": validation,
        "wall_s": round(time.time() - started, 1),
    }
    (work / "gpu_train.json").write_text(json.dumps(result, indent=1))
    (out / "gpu_train.md").write_text(markdown(result))
    report = pack_report(out, work)
    log(f"wrote {[f.name for f in (*parts, report)]} and gpu_train.md to {out}")
    print(markdown(result), flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("phase", choices=("render", "train", "all"))
    parser.add_argument("--work", required=True, help="scratch directory (data, runs); tens of GB for a full run")
    parser.add_argument("--out", help="where the returned files go ($OUT on the device); train and all only")
    parser.add_argument(
        "--render-seconds", type=float, default=200.0, help="render: time for the validation and training data"
    )
    parser.add_argument("--seconds", type=float, default=300.0, help="train: training time of all stages together")
    parser.add_argument(
        "--num-workers",
        type=int,
        default=max((os.cpu_count() or 2) - 2, 1),
        help="synth worker processes and batch-building processes (default: all cores but two)",
    )
    parser.add_argument("--preset", default=PRESET)
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    parser.add_argument("--smoke", action="store_true", help="CPU, toy data, tiny-based preset at 32x48, a few steps")
    args = parser.parse_args(argv)
    if args.phase != "render" and not args.out:
        parser.error(f"{args.phase} needs --out DIR")
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    preset = args.preset
    if args.smoke:
        from offline_training.training.toy import toy_preset

        preset = toy_preset(str(work / "smoke_preset.json"), SMOKE["height"], SMOKE["width"])
    if args.phase in ("render", "all"):
        render(work, args.render_seconds, args.num_workers, args.smoke)
    if args.phase in ("train", "all"):
        train_and_pack(work, Path(args.out), preset, args.seconds, args.num_workers, device, args.smoke)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
