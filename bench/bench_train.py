"""Training throughput of `embody4d train`: samples per second per stage (tiny preset by default).

    python bench/bench_train.py --stages vae,estimator,stage1,stage2 --frames 5 --steps 6 --num-threads 2

Each stage runs the real training loop (data preparation, forward, backward, optimiser step) on the analytic toy
dataset at the preset's resolution and reports the mean samples/s over the steps after the first (the first one pays
one-off costs): samples over their total time, and the median step time. Prints a JSON list and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--stages", default="vae,estimator,stage1,stage2")
    parser.add_argument("--frames", type=int, default=5, help="frames per clip, 4k+1")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--num-threads", type=int, default=2)
    args = parser.parse_args()

    from model.pipeline import Embody4DPipeline
    from offline_training.train import TrainConfig, train
    from offline_training.training.toy import ToyDataset

    settings = Embody4DPipeline.from_preset(args.preset).settings
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        data = ToyDataset(
            f"{tmp}/data", num_samples=4, num_frames=args.frames, height=settings.height, width=settings.width
        ).write()
        for stage in args.stages.split(","):
            started = time.perf_counter()
            summary = train(
                TrainConfig(
                    stage=stage,
                    data=data,
                    out=f"{tmp}/{stage}",
                    preset=args.preset,
                    steps=args.steps,
                    batch_size=args.batch_size,
                    frames=args.frames,
                    checkpoint_every=args.steps,
                    num_threads=args.num_threads,
                    progress=False,
                )
            )
            results.append(
                {
                    "stage": stage,
                    "preset": args.preset,
                    "resolution": f"{settings.height}x{settings.width}",
                    "frames": args.frames,
                    "batch_size": args.batch_size,
                    "steps": args.steps,
                    "samples_per_s": round(summary["samples_per_s"], 3),
                    "median_step_s": round(summary["median_step_s"], 2),
                    "wall_s": round(time.perf_counter() - started, 1),
                }
            )
    print(json.dumps(results, indent=1))
    print("| stage | resolution | frames | batch | samples/s | median step (s) |\n|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['stage']} | {r['resolution']} | {r['frames']} | {r['batch_size']} | {r['samples_per_s']} | "
            f"{r['median_step_s']} |"
        )


if __name__ == "__main__":
    main()
