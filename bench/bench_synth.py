"""Data-engine throughput: samples per minute of `embody4d synth` (render + plausibility + write), and where time goes.

    python bench/bench_synth.py --num-samples 6 --num-workers 2

Runs a fresh synth into a temporary directory (49 frames at 240x320 by default) and prints a JSON summary:
end-to-end samples/min (first GL context included), the on-disk size per sample, and a per-stage split from timing
render_two_view_clip and the shard encoding on one extra sample in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-samples", type=int, default=6)
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("--num-frames", type=int, default=49)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from offline_training.data import open_dataset
    from offline_training.data.format import encode_sample
    from offline_training.sim import render_two_view_clip
    from offline_training.synth import SynthConfig, synthesize

    with tempfile.TemporaryDirectory() as out:
        config = SynthConfig(
            out=out,
            num_samples=args.num_samples,
            num_workers=args.num_workers,
            seed=args.seed,
            num_frames=args.num_frames,
            height=args.height,
            width=args.width,
            samples_per_shard=max(1, -(-args.num_samples // args.num_workers)),
        )
        start = time.perf_counter()
        summary = synthesize(config, show_progress=False)
        elapsed = time.perf_counter() - start
        size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out) if f.endswith(".tar"))
        robots = sorted({s["meta"]["robot"] for s in open_dataset(out)})

    render_two_view_clip("panda", num_frames=1, height=args.height, width=args.width)  # GL context warm-up
    start = time.perf_counter()
    sample = render_two_view_clip("panda", num_frames=args.num_frames, height=args.height, width=args.width, seed=1)
    render_s = time.perf_counter() - start
    start = time.perf_counter()
    encode_sample(sample)
    encode_s = time.perf_counter() - start

    written = summary["samples_written"]
    print(
        json.dumps(
            {
                "num_frames": args.num_frames,
                "resolution": f"{args.height}x{args.width}",
                "workers": args.num_workers,
                "samples_written": written,
                "rejections": summary["rejections"],
                "robots": robots,
                "seconds": round(elapsed, 1),
                "samples_per_min": round(60 * written / elapsed, 2),
                "mb_per_sample": round(size / max(written, 1) / 1e6, 1),
                "one_sample_render_s": round(render_s, 2),
                "one_sample_encode_s": round(encode_s, 2),
                "cpu_count": os.cpu_count(),
                "load_avg_1min": round(os.getloadavg()[0], 2),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
