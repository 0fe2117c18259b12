"""`embody4d synth`: render a sharded two-view dataset across robot morphologies (paper section 3, appendix C.1).

Sample ``i`` of a dataset depends only on (seed, i): its morphology is the ``i``-th of a seeded round-robin over the
split's morphologies (then one of that morphology's robots at random) and its scene, motion and cameras come from
a generator seeded with (seed, i, attempt). So the same arguments give the same samples however the work is spread
over workers and machines, and a resumed run regenerates exactly the shards that were missing.

Samples are grouped into files of ``--samples-per-shard``; ``--shard-index i --num-shards n`` makes this process do
only files ``i, i + n, i + 2n, ...`` so a batch scheduler can fan a dataset out over n machines writing to one
directory. A candidate that fails the plausibility check (the paper filters with GPT-4o; here robot visible and
unclipped in both views, enough texture, parallax in range, valid depth) is re-rendered with the next attempt seed;
rejections are counted by reason in each shard's index and summed at the end.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import glob
import json
import multiprocessing
import os
from typing import Any

import numpy as np

from model.clips import ClipRule
from model.depth_sensor import DEPTH_MODELS, sensor_depth

from .data import (
    ARRAY_SCHEMA,
    FORMAT_NAME,
    FORMAT_VERSION,
    OPTIONAL_ARRAYS,
    ShardWriter,
    shard_done,
    write_json_atomic,
)


def option(default: Any, help_text: str, **argparse_kwargs: Any) -> Any:
    """A config field that is also a command-line option (see :func:`add_config_arguments`)."""
    return dataclasses.field(default=default, metadata={"help": help_text, "argparse": argparse_kwargs})


@dataclasses.dataclass
class PlausibilityConfig:
    """Thresholds of the plausibility check that stands in for the paper's GPT-4o filter.

    Attributes:
        min_robot_fraction: the robot covers at least this fraction of the image in every frame of both views.
        max_clipped_frames: at most this fraction of frames may show the robot touching the image border.
        min_texture: grey-level standard deviation of the first source and target frames (0-255): blank views fail.
        view_angle_deg: angle between the two optical axes must lie in this range (moderate parallax).
        min_valid_depth: fraction of pixels with valid depth in both views.
    """

    min_robot_fraction: float = option(0.01, "min robot area fraction per frame, both views")
    max_clipped_frames: float = option(0.0, "max fraction of frames with the robot on the border")
    min_texture: float = option(10.0, "min grey-level std of the first frames")
    view_angle_deg: tuple[float, float] = option(
        (4.0, 45.0), "allowed angle between the optical axes", metavar=("LOW", "HIGH")
    )
    min_valid_depth: float = option(0.98, "min fraction of pixels with valid depth")


DEFAULT_ROBOT_SCALE = (0.85, 1.15)


@dataclasses.dataclass
class SynthConfig:
    """What `embody4d synth` renders; every field is also a command-line option (``--num-samples`` ...)."""

    out: str = option("", "output directory (shared by every machine writing this dataset)", required=True)
    num_samples: int = option(16, "samples in the whole dataset")
    split: str = option(
        "train", "which robot morphologies (the test ones are held out of train)", choices=("train", "test")
    )
    seed: int = option(0, "dataset seed: sample i depends only on (seed, i)")
    num_frames: int = option(49, "frames per clip, 4k+1")
    height: int = option(240, "image height")
    width: int = option(320, "image width")
    samples_per_shard: int = option(8, "samples per shard file")
    num_workers: int = option(1, "worker processes on this machine (one shard at a time each)")
    shard_index: int = option(0, "this machine's slot: it writes shard files shard_index, +num_shards, ...")
    num_shards: int = option(1, "number of machines (slots) the dataset is spread over")
    max_attempts: int = option(6, "render attempts per sample before it is given up")
    robots: str = option("", "comma-separated subset of the split's robots; empty = all")
    depth_model: str = option(
        "clean",
        "also store the source depth as this depth source would give it "
        "(src_depth_sensor; model.depth_sensor): clean (nothing extra), stereo or mono",
        choices=DEPTH_MODELS,
    )
    robot_scale: tuple[float, float] = option(
        DEFAULT_ROBOT_SCALE,
        "range of the robots' uniform scale; 1 1 keeps them at their true size (a URDF robot's sample then refers "
        "to its URDF file, which the robot-aware evaluation reads as a robot description)",
        metavar=("LOW", "HIGH"),
    )
    plausibility: PlausibilityConfig = dataclasses.field(default_factory=PlausibilityConfig)

    def __post_init__(self) -> None:
        if self.split not in ("train", "test"):
            raise ValueError(f"--split must be train or test, got {self.split!r}")
        if not ClipRule().is_valid(self.num_frames):
            raise ValueError(f"--num-frames must be 4k+1 for the video VAE (e.g. 13, 49), got {self.num_frames}")
        if not 0 <= self.shard_index < self.num_shards:
            raise ValueError(f"--shard-index must be in [0, --num-shards={self.num_shards}), got {self.shard_index}")
        if self.num_samples < 1 or self.samples_per_shard < 1 or self.num_workers < 1 or self.max_attempts < 1:
            raise ValueError("--num-samples, --samples-per-shard, --num-workers and --max-attempts must be >= 1")

    @property
    def num_files(self) -> int:
        return -(-self.num_samples // self.samples_per_shard)


# --------------------------------------------------------------------------------------------- plausibility check


def plausibility_failure(sample: dict[str, Any], config: PlausibilityConfig) -> str | None:
    """The first reason ``sample`` is implausible ("robot_not_visible", "robot_clipped", "low_texture",
    "parallax_out_of_range", "invalid_depth"), or None when it passes."""
    for view in ("src", "tgt"):
        # robot-only masks when the renderer provides them, else robot-and-object masks
        robot = np.asarray(sample.get(f"{view}_robot_mask", sample[f"{view}_mask"])) > 0
        if robot.mean(axis=(1, 2)).min() < config.min_robot_fraction:
            return "robot_not_visible"
        border = robot[:, 0, :].any(1) | robot[:, -1, :].any(1) | robot[:, :, 0].any(1) | robot[:, :, -1].any(1)
        if border.mean() > config.max_clipped_frames:
            return "robot_clipped"
        if (sample[f"{view}_depth"] > 0).mean() < config.min_valid_depth:
            return "invalid_depth"
        if sample[f"{view}_rgb"][0].astype(np.float32).mean(axis=2).std() < config.min_texture:
            return "low_texture"
    T = sample["T_tgt_src"][0]
    angle = float(np.rad2deg(np.arccos(np.clip((np.trace(T[:3, :3]) - 1) / 2, -1.0, 1.0))))
    if not config.view_angle_deg[0] <= angle <= config.view_angle_deg[1]:
        return "parallax_out_of_range"
    return None


# -------------------------------------------------------------------------------------------------- the robots


def split_robots(config: SynthConfig) -> list[str]:
    """The robots of ``config.split`` (optionally the ``config.robots`` subset), sorted.

    ``available_robots`` leaves out, with a warning naming it, any robot whose assets fail to load.
    """
    from .sim import available_robots

    names = available_robots(config.split)
    if config.robots:
        wanted = [r.strip() for r in config.robots.split(",") if r.strip()]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            raise ValueError(
                f"--robots {unknown} are not loadable robots of the {config.split} split; choose from {names}"
            )
        names = wanted
    if not names:
        raise RuntimeError(
            f"no robot of the {config.split} split loads; check the robot wheels "
            "(pip install --no-deps robosuite pybullet dm-control gymnasium-robotics metaworld)"
        )
    return sorted(names)


def robot_for_index(robots: list[str], seed: int, index: int) -> str:
    """Seeded round-robin over morphologies: each appears once per cycle of that many consecutive samples, as one
    of its robots (e.g. the robosuite or the pybullet Panda) drawn at random."""
    from .sim import MORPHOLOGY

    morphologies = sorted({MORPHOLOGY[r] for r in robots})
    cycle, position = divmod(index, len(morphologies))
    order = np.random.default_rng([seed, cycle, 0x726F626F]).permutation(len(morphologies))
    members = [r for r in robots if MORPHOLOGY[r] == morphologies[int(order[position])]]
    return members[int(np.random.default_rng([seed, index, 0x726F626F]).integers(len(members)))]


def render_sample(
    config: SynthConfig, robots: list[str], index: int, rejections: collections.Counter
) -> dict[str, Any] | None:
    """Sample ``index``: render candidates until one passes the plausibility check (None after max_attempts)."""
    from .sim import SceneConfig, render_two_view_clip

    robot = robot_for_index(robots, config.seed, index)
    for attempt in range(config.max_attempts):
        sample_seed = int(np.random.SeedSequence([config.seed, index, attempt]).generate_state(1)[0])
        sample = render_two_view_clip(
            robot,
            num_frames=config.num_frames,
            height=config.height,
            width=config.width,
            seed=sample_seed,
            scene_config=SceneConfig(robot_scale=config.robot_scale),
        )
        reason = plausibility_failure(sample, config.plausibility)
        if reason is None:
            sample["meta"].update(split=config.split, index=index, attempt=attempt, dataset_seed=config.seed)
            if config.depth_model != "clean":
                sample["src_depth_sensor"] = sensor_depth(
                    sample["src_depth"], sample["K_src"], config.depth_model, seed=sample_seed
                )
                sample["meta"]["depth_model"] = config.depth_model
            return sample
        rejections[reason] += 1
    rejections["gave_up"] += 1
    return None


def make_shard(config: SynthConfig, robots: list[str], shard: int, progress=None) -> dict[str, Any]:
    """Render and write file shard ``shard``; returns its stats (samples, rejections by reason)."""
    rejections: collections.Counter = collections.Counter()
    first = shard * config.samples_per_shard
    last = min(config.num_samples, first + config.samples_per_shard)
    written = 0
    with ShardWriter(config.out, shard) as writer:
        for index in range(first, last):
            sample = render_sample(config, robots, index, rejections)
            if sample is not None:
                writer.add(f"{index:08d}", sample)
                written += 1
            if progress is not None:
                progress(1)
        writer.stats = {"samples": written, "rejections": dict(rejections)}
    return writer.stats


def _worker(args: tuple[SynthConfig, list[str], int]) -> tuple[int, dict[str, Any]]:
    config, robots, shard = args
    return shard, make_shard(config, robots, shard)


def manifest(config: SynthConfig, robots: list[str]) -> dict[str, Any]:
    """dataset.json: identical for every machine writing the same dataset, so any of them may write it."""
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "split": config.split,
        "seed": config.seed,
        "num_samples": config.num_samples,
        "samples_per_shard": config.samples_per_shard,
        "num_shards": config.num_files,
        "num_frames": config.num_frames,
        "height": config.height,
        "width": config.width,
        "robots": robots,
        "schema": {name: {"dtype": dt, "shape": shape} for name, (dt, shape) in ARRAY_SCHEMA.items()}
        | {name: {"dtype": OPTIONAL_ARRAYS[name][0], "shape": OPTIONAL_ARRAYS[name][1]} for name in _ROBOT_ARRAYS}
        | {
            "caption": "str",
            "meta": "dict (robot, scene, seed, split, index, ...)",
            "joint_names": "list of J str",
            "robot_model": "dict (library, scale[, urdf])",
        },
        "plausibility": dataclasses.asdict(config.plausibility),
    } | {
        key: value
        for key, value, default in [
            ("depth_model", config.depth_model, "clean"),
            ("robot_scale", list(config.robot_scale), list(DEFAULT_ROBOT_SCALE)),
        ]
        if value != default
    }


# what every synthesised sample carries beyond the base schema
_ROBOT_ARRAYS = ("src_robot_mask", "tgt_robot_mask", "joint_positions", "T_src_base")


def synthesize(config: SynthConfig, show_progress: bool = True) -> dict[str, Any]:
    """Write this process's part of the dataset under ``config.out``; returns a summary (shards done, rejections)."""
    from tqdm import tqdm

    if not config.out:
        raise ValueError("--out DIR is required")
    robots = split_robots(config)
    info = json.loads(json.dumps(manifest(config, robots)))  # as it reads back: tuples become lists
    os.makedirs(config.out, exist_ok=True)
    path = os.path.join(config.out, "dataset.json")
    if os.path.exists(path):
        with open(path) as f:
            existing = json.load(f)
        if existing != info:
            changed = sorted(k for k in info if existing.get(k) != info[k])
            raise ValueError(
                f"{path} describes a dataset with other settings ({', '.join(changed)}); "
                "resume with the same arguments or use a new --out"
            )
    else:
        write_json_atomic(path, info)

    mine = range(config.shard_index, config.num_files, config.num_shards)
    todo = [s for s in mine if not shard_done(config.out, s)]
    for stale in glob.glob(os.path.join(config.out, "shard-*.tmp*")):
        # leftovers of a killed run of this same fan-out slot; other slots' files are not ours to touch
        if int(os.path.basename(stale)[6:12]) in todo:
            os.remove(stale)
    sizes = {
        s: min(config.num_samples, (s + 1) * config.samples_per_shard) - s * config.samples_per_shard for s in todo
    }
    totals: collections.Counter = collections.Counter()
    with tqdm(total=sum(sizes.values()), unit="sample", desc=f"synth {config.split}", disable=not show_progress) as bar:
        if config.num_workers == 1:
            results = [(s, make_shard(config, robots, s, bar.update)) for s in todo]
        else:
            # spawn: each worker opens its own GL context; forked EGL state is not safe to share
            ctx = multiprocessing.get_context("spawn")
            results = []
            with ctx.Pool(min(config.num_workers, max(1, len(todo)))) as pool:
                for shard, stats in pool.imap_unordered(_worker, [(config, robots, s) for s in todo]):
                    results.append((shard, stats))
                    bar.update(sizes[shard])
    for _, stats in results:
        totals.update(stats["rejections"])
    return {
        "out": config.out,
        "shards_skipped": len(mine) - len(todo),
        "shards_written": len(todo),
        "samples_written": sum(stats["samples"] for _, stats in results),
        "rejections": dict(totals),
    }


# ------------------------------------------------------------------------------------------------------- the CLI


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, prefix: str = "") -> None:
    """Add every field of dataclass ``cls`` as an option: ``--num-samples`` at the top level, ``--prefix.name`` for
    the fields of a nested config (``--plausibility.min_texture``); tuples take one value per element."""
    for field in dataclasses.fields(cls):
        if dataclasses.is_dataclass(field.default_factory):
            add_config_arguments(parser, field.default_factory, f"{prefix}{field.name}.")
            continue
        default = field.default
        kwargs: dict[str, Any] = {
            "dest": prefix + field.name,
            "default": default,
            "help": f"{field.metadata['help']} (default: {default!r})",
        }
        if isinstance(default, tuple):
            kwargs.update(type=type(default[0]), nargs=len(default))
        else:
            kwargs["type"] = type(default)
        kwargs.update(field.metadata["argparse"])
        parser.add_argument(f"--{prefix}{field.name}" if prefix else "--" + field.name.replace("_", "-"), **kwargs)


def config_from_args(cls: type, args: argparse.Namespace, prefix: str = "") -> Any:
    """The ``cls`` instance that :func:`add_config_arguments` options were parsed into."""
    kwargs = {}
    for field in dataclasses.fields(cls):
        if dataclasses.is_dataclass(field.default_factory):
            kwargs[field.name] = config_from_args(field.default_factory, args, f"{prefix}{field.name}.")
        else:
            value = getattr(args, prefix + field.name)
            kwargs[field.name] = tuple(value) if isinstance(field.default, tuple) else value
    return cls(**kwargs)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, SynthConfig)


def run(args: argparse.Namespace) -> int:
    summary = synthesize(config_from_args(SynthConfig, args))
    print(json.dumps(summary, indent=1))
    return 0
