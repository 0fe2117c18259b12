"""Latency of the Embody4D network (tiny preset by default) on this machine, and window-seam smoothness.

    python bench/bench_network.py [--preset tiny] [--steps 1 2 4] [--repeats 5] [--threads 2] [--clip-frames 13]
                                  [--seam-frames 45] [--skip-clip] [--skip-seams]

Image mode: one 240x320 frame end to end (VAE encode of warped + source, routing, N sampler steps, VAE decode), ms per
frame, median over repeats after one warm-up. Clip mode: a `--clip-frames` clip, ms per frame. Seams: a long
still-camera clip generated in latent-blended overlapping windows; mean absolute frame-to-frame change at window
hand-overs vs at latent boundaries inside windows, and the same for independent windows cut end to end (the paper's
approach). Weights are random unless --model-path is given.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from model.engines.base import GenerationRequest
from model.engines.torch_engine import TorchEngine
from model.pipeline import Embody4DPipeline, window_starts


def timed(fn, repeats: int) -> float:
    """Median wall time in ms over `repeats` calls after one warm-up (the minimum is logged: on a shared machine it
    shows what the code costs, the median what the load allowed)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    TIMINGS.append(min(times) * 1000.0)
    return statistics.median(times) * 1000.0


TIMINGS: list[float] = []  # the minimum of each `timed` call, in order


def inputs(frames: int, height: int, width: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    source = torch.rand(1, 3, frames, height, width, generator=g) * 2 - 1
    coverage = (torch.rand(1, 1, frames, height, width, generator=g) > 0.2).float()
    return dict(source=source, warped=source * coverage, coverage=coverage)


def stage_times(pipe: Embody4DPipeline, data: dict[str, torch.Tensor], steps: int, repeats: int) -> dict[str, float]:
    with torch.inference_mode():
        encode = timed(lambda: pipe.encode_conditions(**data), repeats)
        cond = pipe.encode_conditions(**data)
        noise = torch.randn_like(cond.warped)
        step = timed(lambda: pipe.predict(noise, torch.tensor(500.0), cond), repeats)
        decode = timed(lambda: pipe.vae.decode_latents(noise, data["warped"].shape[2]), repeats)
    return {"encode+route": encode, "transformer step": step, "decode": decode}


def seam_change(video: torch.Tensor, seams: list[int]) -> tuple[float, float]:
    """Mean |frame j+1 - frame j| over seam pairs j and over the other latent boundaries (j = 4i, i >= 1).

    video (3, T, H, W). Pair (0, 1) is left out: the causal VAE codes frame 0 alone."""
    change = (video[:, 1:] - video[:, :-1]).abs().mean(dim=(0, 2, 3))
    inside = [j for j in range(4, video.shape[1] - 1, 4) if j not in seams]
    return change[seams].mean().item(), change[inside].mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--model-path", default=None)
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clip-frames", type=int, default=13)
    parser.add_argument("--seam-frames", type=int, default=45)
    parser.add_argument("--skip-clip", action="store_true")
    parser.add_argument("--skip-seams", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipe = (
        Embody4DPipeline.from_pretrained(args.model_path)
        if args.model_path
        else Embody4DPipeline.from_preset(args.preset)
    )
    h, w = pipe.settings.height, pipe.settings.width
    print(f"preset {args.preset}, {h}x{w}, sampler {type(pipe.scheduler).__name__}, threads {torch.get_num_threads()}")

    modes = [("image", 1)] + ([] if args.skip_clip else [("clip", args.clip_frames)])
    for mode, frames in modes:
        data = inputs(frames, h, w)
        parts = stage_times(pipe, data, 1, args.repeats)
        print(f"{mode} mode ({frames} frames) stages, ms: " + ", ".join(f"{k} {v:.1f}" for k, v in parts.items()))
        for steps in args.steps:

            def run() -> None:
                pipe(**data, num_inference_steps=steps, generator=torch.Generator().manual_seed(0))

            total = timed(run, args.repeats)
            print(
                f"{mode} mode, {steps} steps: median {total:.1f} ms per call, {total / frames:.1f} ms per frame "
                f"(min {TIMINGS[-1] / frames:.1f} ms per frame)"
            )

    engine_steps = pipe.settings.num_inference_steps
    engine = TorchEngine(pipeline=pipe, steps=engine_steps)
    frame = (inputs(1, h, w)["warped"][0].permute(1, 2, 3, 0).numpy() * 127.5 + 127.5).astype(np.uint8)
    mask = frame.sum(-1) > 0
    request = GenerationRequest(source_rgb=frame, warped_rgb=frame, warp_mask=mask, coverage=mask.astype(np.float32))
    median = timed(lambda: engine.generate(request), args.repeats)
    print(
        f"torch engine, image mode, {engine_steps} steps (the model's default), uint8 in/out: median {median:.1f} ms "
        f"per frame (min {TIMINGS[-1]:.1f})"
    )

    if not args.skip_seams:
        frames = args.seam_frames
        g = torch.Generator().manual_seed(1)
        still = (torch.rand(1, 3, 1, h, w, generator=g) * 2 - 1).expand(1, 3, frames, h, w)
        data = dict(source=still, warped=still, coverage=torch.ones(1, 1, frames, h, w))
        rule = pipe.vae.clip_rule
        window = rule.latent_frames(pipe.settings.window_frames)
        steps = pipe.settings.num_inference_steps
        blended = pipe(**data, generator=torch.Generator().manual_seed(0))[0]
        starts = window_starts(rule.latent_frames(frames), window, pipe.settings.overlap_latent_frames)
        covering = [{k for k, s in enumerate(starts) if s <= i < s + window} for i in range(rule.latent_frames(frames))]
        seams = [rule.temporal_compression * i for i in range(1, len(covering) - 1) if covering[i] != covering[i + 1]]
        seam, inside = seam_change(blended, seams)
        print(
            f"seams, {frames} frames, windows of {window} latents starting at {starts}, {steps} steps: "
            f"blended windows: seam {seam:.4f} vs inside {inside:.4f} (ratio {seam / inside:.2f})"
        )
        # independent windows cut end to end (the paper's approach): 4k+1-frame pieces sharing their edge frame
        span = rule.largest_clip(pipe.settings.window_frames)
        pieces, cuts, start = [], [], 0
        while start < frames - 1:
            end = min(start + span, frames)
            piece = {k: v[:, :, start:end] for k, v in data.items()}
            out = pipe(**piece, generator=torch.Generator().manual_seed(len(pieces)))[0]
            pieces.append(out if not pieces else out[:, 1:])
            cuts.append(start)
            start = end - 1
        seam, inside = seam_change(torch.cat(pieces, dim=1), cuts[1:])
        print(
            f"independent windows cut at frames {cuts[1:]}: seam {seam:.4f} vs inside {inside:.4f} "
            f"(ratio {seam / inside:.2f})"
        )


if __name__ == "__main__":
    main()
