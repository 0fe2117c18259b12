"""The `embody4d` command (docs/DESIGN.md contract 4).

Each subcommand lives in its own module exposing `add_arguments(parser)` and `run(args) -> int`; modules import
lazily so that `embody4d --help` stays fast and a command's heavy dependencies load only when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "embody4d_ros.demo",
        "render a simulated RealSense clip, warp it to a virtual camera, write video + report",
    ),
    "augment-bag": (
        "embody4d_ros.augment_bag",
        "add virtual camera topics to a rosbag2 (sqlite3 or MCAP), keeping every input message",
    ),
    "synth": ("offline_training.synth", "render a sharded two-view robot dataset across morphologies (resumable)"),
    "contact-sheet": ("offline_training.contact_sheet", "PNG grid of random samples: source, target, masks"),
    "train": (
        "offline_training.train",
        "train a stage (vae, estimator, stage1, stage2) with accelerate; checkpoints, exact resume",
    ),
    "eval": (
        "offline_training.evaluate",
        "PSNR/SSIM (overall, per route, disoccluded), flicker vs baselines; table + images",
    ),
    "export": ("model.export", "ONNX graphs of a model (VAE, router, denoiser, text) at fixed shapes + manifest.json"),
    "bench": (
        "embody4d_ros.bench",
        "per-frame latency (median, p99) and throughput per engine, mode, resolution, steps",
    ),
    "bench-policy": (
        "offline_training.policy_bench.benchmark",
        "closed-loop success of a BC policy under camera shifts, per view-augmentation variant",
    ),
}


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The full parser; only the `chosen` subcommand's module is imported to add its arguments."""
    parser = argparse.ArgumentParser(prog="embody4d", description="Embody4D virtual camera tools.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        sub_parser.set_defaults(_module=module_name)
        if name == chosen:
            importlib.import_module(module_name).add_arguments(sub_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    chosen = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(chosen).parse_args(argv)
    return int(importlib.import_module(args._module).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
