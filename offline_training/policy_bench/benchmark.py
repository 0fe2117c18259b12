"""`embody4d bench-policy`: does training with virtual views make an image policy robust to camera shifts?

    embody4d bench-policy --out bench_policy/            # the full benchmark (docs/EVALUATION.md)
    embody4d bench-policy --smoke --out /tmp/smoke       # a tiny run of every stage (the test suite's size)
    embody4d bench-policy --merge runA runB --out both    # one table and plot from runs of other variants

Stages (each with a progress bar): scripted demonstrations from the training camera; the extra views of every
variant from the same LIBERO-style viewpoints; their PSNR against the oracle's true renders; per variant and
training seed, behaviour cloning then closed-loop evaluation from cameras orbited by each offset, with the same
start states at every offset. The views and the policies are made in `--workers` processes (2 on this machine's two
cores; the results do not depend on the number). Writes results.json, table.md and success.png to --out and prints
the table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from model.geometry import OrbitTarget
from offline_training.policy_bench.policy import TrainConfig, evaluate_policy, train_policy
from offline_training.policy_bench.task import ReachTask, StartState, TaskConfig, sample_start_states
from offline_training.policy_bench.views import (
    VIEW_SOURCES,
    Demonstrations,
    collect_demonstrations,
    extra_views,
    psnr,
    sample_viewpoints,
)

DEFAULT_VARIANTS = ("original", "warp-raw", "warp-pushpull", "warp-telea", "robot-aware", "oracle")


@dataclass(frozen=True)
class BenchConfig:
    """Sizes of one benchmark run.

    Attributes:
        demos: expert demonstrations from the training camera.
        views_per_demo: viewpoints drawn per demonstration (each variant renders the demonstration from all of them).
        episodes: evaluation episodes per camera offset (the same start states at every offset).
        seeds: training seeds per variant.
        yaw_deg, pitch_deg: evaluation offsets of the camera orbit (0 is the training camera).
        variants: names from `VIEW_SOURCES`.
        seed: seeds the demonstrations, the viewpoints and the evaluation start states.
    """

    demos: int = 200
    views_per_demo: int = 4
    episodes: int = 100
    seeds: int = 3
    yaw_deg: tuple[float, ...] = (-40, -30, -20, -10, 0, 10, 20, 30, 40)
    pitch_deg: tuple[float, ...] = (-15, 15)
    variants: tuple[str, ...] = DEFAULT_VARIANTS
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0

    @property
    def offsets(self) -> list[tuple[float, float]]:
        """(yaw, pitch) pairs: the yaw sweep at pitch 0, then the pitch offsets at yaw 0."""
        return [(float(y), 0.0) for y in self.yaw_deg] + [(0.0, float(p)) for p in self.pitch_deg]


SMOKE = BenchConfig(
    demos=6,
    views_per_demo=1,
    episodes=4,
    seeds=1,
    yaw_deg=(0, 30),
    pitch_deg=(15,),
    variants=("original", "warp-pushpull", "oracle"),
    train=TrainConfig(iterations=20),
)


# demonstrations per job of the views stage: small enough to share the work between the workers and move the
# progress bar, large enough that sending the source renders (~1.4 MB a demonstration) costs little
VIEW_CHUNK = 10

# the task of this process's jobs (a worker's own, or the benchmark's when it runs them itself) and the line of its
# progress bars
_job_task: ReachTask | None = None
_bar_position = 1


def _start_worker(task_config: TaskConfig, threads: int, positions: Any) -> None:
    """Set up a worker process: its own task (a renderer's GL context belongs to one process), torch threads and a
    progress-bar line from `positions` (a queue)."""
    import torch

    global _job_task, _bar_position
    torch.set_num_threads(threads)
    _bar_position = positions.get()
    _job_task = ReachTask(task_config)


class _Jobs:
    """Runs the benchmark's jobs in `workers` spawned processes, or in this process (with `task`) for one worker.
    `map` yields the results in the order of the jobs, and each job depends on its arguments alone, so the results
    do not depend on the number of workers."""

    def __init__(self, task: ReachTask, workers: int, threads: int) -> None:
        global _job_task
        self._pool: Any = None
        if workers == 1:
            _job_task = task
            return
        context = multiprocessing.get_context("spawn")  # a forked child would share this process's GL context
        positions = context.Queue()
        for position in range(1, workers + 1):
            positions.put(position)
        self._pool = context.Pool(workers, _start_worker, (task.config, threads, positions))

    def map(self, function: Callable[[Any], Any], jobs: Iterable[Any]) -> Iterator[Any]:
        return map(function, jobs) if self._pool is None else self._pool.imap(function, jobs)

    def __enter__(self) -> _Jobs:
        return self

    def __exit__(self, error_type: type | None, *_: object) -> None:
        global _job_task
        if self._pool is None:
            _job_task = None  # the caller closes its task
            return
        if error_type is None:
            self._pool.close()
        else:
            self._pool.terminate()
        self._pool.join()  # reaped, so the workers' CPU time counts in RUSAGE_CHILDREN


def _views_job(job: tuple[str, Demonstrations, list[list[OrbitTarget]]]) -> tuple[np.ndarray, float]:
    """One variant's extra views of a chunk of demonstrations, and the CPU seconds they took."""
    name, demos, viewpoints = job
    source = VIEW_SOURCES[name]
    assert source is not None and _job_task is not None  # only variants with views; set up by _Jobs
    cpu = time.process_time()
    return extra_views(_job_task, demos, viewpoints, source), time.process_time() - cpu


@dataclass
class _PolicyJob:
    """Train one variant's policy with one seed, then evaluate it closed loop."""

    name: str
    seed: int
    images: np.ndarray
    ee: np.ndarray
    actions: np.ndarray
    train: TrainConfig
    states: list[StartState]
    offsets: list[tuple[float, float]]


def _policy_job(job: _PolicyJob) -> tuple[list[float], float, float, float]:
    """(success rate per offset, final training loss, training and evaluation CPU seconds)."""
    task = _job_task
    assert task is not None  # set up by _Jobs
    label, cpu = f"{job.name} s{job.seed}", time.process_time()
    policy, loss = train_policy(
        job.images,
        job.ee,
        job.actions,
        task.config.max_step_m,
        job.seed,
        job.train,
        desc=f"train {label}",
        position=_bar_position,
    )
    trained = time.process_time()
    result = evaluate_policy(task, policy, job.states, job.offsets, desc=f"evaluate {label}", position=_bar_position)
    return result.mean(axis=1).tolist(), loss, trained - cpu, time.process_time() - trained


def run_benchmark(
    config: BenchConfig,
    task_config: TaskConfig | None = None,
    on_progress: Callable[[dict], object] | None = None,
    workers: int = 1,
    threads: int = 1,
) -> dict:
    """Run every stage; returns the results (what results.json holds). on_progress gets the results so far after
    each trained and evaluated policy. The views and the policies are made in `workers` processes (each with
    `threads` torch threads); the results are the same for any number."""
    task_config = task_config or TaskConfig()
    unknown = [v for v in config.variants if v not in VIEW_SOURCES]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; choose from {list(VIEW_SOURCES)}")
    started, load_before = time.perf_counter(), os.getloadavg()
    stage_seconds: dict[str, float] = {}
    stage_cpu_seconds: dict[str, float] = {}

    def lap(stage: str, since: float) -> float:
        now = time.perf_counter()
        stage_seconds[stage] = round(now - since, 1)
        return now

    task = ReachTask(task_config)
    with _Jobs(task, workers, threads) as jobs:  # spawned workers start up while this process collects demos
        clock, cpu = time.perf_counter(), time.process_time()
        demos = collect_demonstrations(task, config.demos, seed=config.seed)
        if not demos.success.all():
            raise RuntimeError(
                f"the scripted expert failed {int((~demos.success).sum())} of {config.demos} "
                "demonstrations: the task configuration is unreachable; check TaskConfig ranges"
            )
        stage_cpu_seconds["demonstrations"] = round(time.process_time() - cpu, 1)
        clock = lap("demonstrations", clock)

        viewpoints = sample_viewpoints(config.demos, config.views_per_demo, task_config.pivot_m, seed=config.seed + 1)
        view_names = [name for name in config.variants if VIEW_SOURCES[name] is not None]
        if view_names and "oracle" not in view_names:  # the views' quality is measured against the oracle's renders
            view_names.append("oracle")
        chunks = [slice(i, min(i + VIEW_CHUNK, config.demos)) for i in range(0, config.demos, VIEW_CHUNK)]
        # every variant's chunks queued at once: no worker waits for the slowest chunk of a variant
        made = jobs.map(_views_job, ((name, demos[c], viewpoints[c]) for name in view_names for c in chunks))
        views: dict[str, np.ndarray] = {}
        for name in view_names:
            parts, cpu_total = [], 0.0
            with tqdm(total=config.demos, desc=f"views {name}", unit="demo") as bar:
                for chunk in chunks:
                    part, chunk_cpu = next(made)
                    parts.append(part)
                    cpu_total += chunk_cpu
                    bar.update(chunk.stop - chunk.start)
            views[name] = np.concatenate(parts)
            stage_cpu_seconds[f"views {name}"] = round(cpu_total, 1)
            clock = lap(f"views {name}", clock)
        reference = views.get("oracle")
        view_psnr = {
            name: psnr(views[name], reference) for name in view_names if name != "oracle" and reference is not None
        }

        states = sample_start_states(task_config, config.episodes, np.random.default_rng(config.seed + 2))
        offsets = config.offsets
        success: dict[str, list[list[float]]] = {name: [] for name in config.variants}
        train_loss: dict[str, list[float]] = {name: [] for name in config.variants}

        def results() -> dict:
            cpu_seconds = sum(
                usage.ru_utime + usage.ru_stime
                for usage in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
            )
            return {
                "config": asdict(config),
                "task": asdict(task_config),
                "offsets": offsets,
                "success": {name: rates for name, rates in success.items() if rates},
                "train_loss": {name: losses for name, losses in train_loss.items() if losses},
                "view_psnr_db": view_psnr,
                "expert_success": float(demos.success.mean()),
                "stage_seconds": stage_seconds,
                "stage_cpu_seconds": stage_cpu_seconds,
                "workers": workers,
                "wall_seconds": round(time.perf_counter() - started, 1),
                "cpu_seconds": round(cpu_seconds, 1),  # the workers' only once they have exited
                "load_average": {
                    "start": [round(x, 2) for x in load_before],
                    "end": [round(x, 2) for x in os.getloadavg()],
                },
            }

        def policy_jobs() -> Iterator[_PolicyJob]:
            # seeds outermost: a run stopped early still has every variant at the seeds it finished
            for seed in range(config.seeds):
                for name in config.variants:
                    images, ee, actions = (
                        demos.images.reshape(-1, *demos.images.shape[2:]),
                        demos.ee.reshape(-1, 3),
                        demos.actions.reshape(-1, 3),
                    )
                    if name in views:  # the extra views show the same states: same proprioception, same expert action
                        per_view = config.views_per_demo
                        images = np.concatenate([images, views[name].reshape(-1, *images.shape[1:])])
                        ee = np.concatenate([ee, np.repeat(demos.ee[:, None], per_view, axis=1).reshape(-1, 3)])
                        view_actions = np.repeat(demos.actions[:, None], per_view, axis=1)
                        actions = np.concatenate([actions, view_actions.reshape(-1, 3)])
                    yield _PolicyJob(name, seed, images, ee, actions, config.train, states, offsets)

        keys = [(seed, name) for seed in range(config.seeds) for name in config.variants]
        done = tqdm(jobs.map(_policy_job, policy_jobs()), total=len(keys), desc="policies", unit="policy")
        for (seed, name), (rates, loss, train_cpu, evaluate_cpu) in zip(keys, done):
            success[name].append(rates)
            train_loss[name].append(round(loss, 6))
            stage_cpu_seconds[f"train {name} s{seed}"] = round(train_cpu, 1)
            stage_cpu_seconds[f"evaluate {name} s{seed}"] = round(evaluate_cpu, 1)
            clock = lap(f"policy {name} s{seed}", clock)
            if on_progress is not None:
                on_progress(results())
    task.close()
    return results()


def _offset_label(offset: tuple[float, float]) -> str:
    yaw, pitch = offset
    return f"pitch {pitch:+.0f}" if pitch else f"yaw {yaw:+.0f}" if yaw else "0"


def format_table(results: dict) -> str:
    """Markdown: one row per variant, success mean ± std over seeds at each offset, and the views' PSNR."""
    offsets = [tuple(o) for o in results["offsets"]]
    header = "| variant | seeds | views PSNR vs oracle (dB) | " + " | ".join(_offset_label(o) for o in offsets) + " |"
    lines = [header, "|" + "---|" * (len(offsets) + 3)]
    for name, per_seed in results["success"].items():
        rates = np.array(per_seed)
        cells = [f"{m:.2f} ± {s:.2f}" for m, s in zip(rates.mean(0), rates.std(0))]
        quality = results["view_psnr_db"].get(name)
        quality = "—" if quality is None else f"{quality:.1f}"
        lines.append(f"| {name} | {len(rates)} | {quality} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_success(results: dict, path: Path) -> None:
    """Success rate against yaw offset, one line per variant (mean, band = min..max over seeds); the pitch offsets
    as markers at the right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    offsets = [tuple(o) for o in results["offsets"]]
    yaw_index = [i for i, (_, p) in enumerate(offsets) if p == 0]
    pitch_index = [i for i, (_, p) in enumerate(offsets) if p != 0]
    fig, (ax_yaw, ax_pitch) = plt.subplots(1, 2, figsize=(10, 4.2), gridspec_kw={"width_ratios": [4, 1]}, sharey=True)
    for name, per_seed in results["success"].items():
        rates = np.array(per_seed)
        yaws = [offsets[i][0] for i in yaw_index]
        (line,) = ax_yaw.plot(yaws, rates[:, yaw_index].mean(0), marker="o", label=name)
        ax_yaw.fill_between(
            yaws, rates[:, yaw_index].min(0), rates[:, yaw_index].max(0), alpha=0.15, color=line.get_color()
        )
        if pitch_index:
            ax_pitch.errorbar(
                [offsets[i][1] for i in pitch_index],
                rates[:, pitch_index].mean(0),
                yerr=rates[:, pitch_index].std(0),
                marker="o",
                linestyle="none",
                color=line.get_color(),
            )
    ax_yaw.axvspan(-30, 30, color="0.9", zorder=0, label="training yaw range")
    ax_yaw.set(xlabel="camera yaw offset (deg)", ylabel="closed-loop success rate", ylim=(-0.02, 1.02))
    ax_pitch.set(xlabel="camera pitch offset (deg)", xticks=[offsets[i][1] for i in pitch_index])
    ax_yaw.legend(fontsize=8, loc="upper left")
    seeds = min(len(per_seed) for per_seed in results["success"].values())
    fig.suptitle(f"Reach policy under camera shifts ({results['config']['episodes']} episodes/offset, {seeds} seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def merge_results(runs: dict[str, dict]) -> dict:
    """One results dict from runs (folder name -> results.json) made with the same sizes, seed and task but other
    variants: their rows are comparable (the same demonstrations, viewpoints and start states, derived from the seed;
    training seeds count from 0, so a run with fewer seeds has the first of another's). Each run's costs are kept
    under "runs"."""
    (first_name, first), *others = runs.items()

    def comparable(results: dict) -> dict:
        config = {k: v for k, v in results["config"].items() if k not in ("variants", "seeds")}
        return {"config": config, "task": results["task"], "offsets": results["offsets"]}

    success: dict[str, list[list[float]]] = dict(first["success"])
    train_loss: dict[str, list[float]] = dict(first.get("train_loss", {}))
    view_psnr = dict(first["view_psnr_db"])
    for name, results in others:
        for key, value in comparable(results).items():
            if value != comparable(first)[key]:
                raise ValueError(
                    f"{name} and {first_name} differ in their {key} ({value} vs {comparable(first)[key]}): "
                    "only runs with the same sizes, seed and task can share a table"
                )
        repeated = sorted(set(results["success"]) & set(success))
        if repeated:
            raise ValueError(f"variant(s) {repeated} of {name} are in another run too; merge each variant once")
        success.update(results["success"])
        train_loss.update(results.get("train_loss", {}))  # runs from before it was recorded have none
        view_psnr.update(results["view_psnr_db"])
    cost_keys = ("wall_seconds", "cpu_seconds", "load_average", "stage_seconds", "stage_cpu_seconds", "workers")
    return {
        "config": {**first["config"], "variants": list(success), "seeds": max(len(r) for r in success.values())},
        "task": first["task"],
        "offsets": first["offsets"],
        "success": success,
        "train_loss": train_loss,
        "view_psnr_db": view_psnr,
        "expert_success": first["expert_success"],
        "runs": {name: {key: results[key] for key in cost_keys if key in results} for name, results in runs.items()},
    }


def write_outputs(results: dict, out: Path) -> str:
    out.mkdir(parents=True, exist_ok=True)
    table = format_table(results)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "table.md").write_text(table + "\n")
    plot_success(results, out / "success.png")
    return table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench_policy"),
        help="folder for results.json, table.md, success.png (rewritten after every policy)",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: every stage in well under a minute")
    parser.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        metavar="RUN",
        help="instead of running: one table and plot in --out from earlier runs' folders (same sizes and seed, "
        "other variants)",
    )
    parser.add_argument(
        "--variants", help=f"comma-separated subset of {','.join(VIEW_SOURCES)} (default: {','.join(DEFAULT_VARIANTS)})"
    )
    parser.add_argument("--demos", type=int, help="expert demonstrations")
    parser.add_argument("--views-per-demo", type=int, help="LIBERO-style viewpoints per demonstration")
    parser.add_argument("--episodes", type=int, help="evaluation episodes per camera offset")
    parser.add_argument("--seeds", type=int, help="training seeds per variant")
    parser.add_argument("--iterations", type=int, help="behaviour-cloning iterations")
    parser.add_argument("--seed", type=int, help="seed of demonstrations, viewpoints and evaluation start states")
    parser.add_argument(
        "--workers",
        type=int,
        help="processes that make the views and train and evaluate the policies side by side (default: the CPU "
        "cores, at most 2; 1 with --smoke, whose jobs take less than starting a worker); the results are the same "
        "for any number",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads per worker (1: on a loaded 2-core machine more threads spin against each other)",
    )


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    config = SMOKE if args.smoke else BenchConfig()
    sizes = {
        "demos": args.demos,
        "views_per_demo": args.views_per_demo,
        "episodes": args.episodes,
        "seeds": args.seeds,
        "seed": args.seed,
    }
    config = replace(config, **{k: v for k, v in sizes.items() if v is not None})
    if args.variants:
        config = replace(config, variants=tuple(v.strip() for v in args.variants.split(",")))
    if args.iterations is not None:
        config = replace(config, train=replace(config.train, iterations=args.iterations))
    return config


def merge(runs: list[Path], out: Path) -> int:
    """`--merge`: write and print the table of earlier runs' results; 2 with one line on stderr if they don't fit."""
    missing = [str(run) for run in runs if not (run / "results.json").is_file()]
    if missing:
        print(f"embody4d bench-policy: error: no results.json in {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        merged = merge_results({str(run): json.loads((run / "results.json").read_text()) for run in runs})
    except ValueError as error:
        print(f"embody4d bench-policy: error: {error}", file=sys.stderr)
        return 2
    print(write_outputs(merged, out))
    print(f"\nmerged {len(runs)} runs into {out}/")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.merge:
        return merge(args.merge, args.out)
    workers = args.workers if args.workers is not None else 1 if args.smoke else min(2, os.cpu_count() or 1)
    if workers < 1:
        print(f"embody4d bench-policy: error: --workers must be at least 1 (got {workers})", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(args.threads)
    # one llvmpipe thread per process: the renders are tiny, and its default (a thread per core) in each of two
    # workers made them slower, not faster; inherited by the workers
    os.environ.setdefault("LP_NUM_THREADS", "1")
    # terminated, exit through the workers' context manager, which stops them (killed outright, they would finish
    # their current job first)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    results = run_benchmark(
        config_from_args(args),
        on_progress=lambda partial: write_outputs(partial, args.out),
        workers=workers,
        threads=args.threads,
    )
    table = write_outputs(results, args.out)
    print(table)
    print(
        f"\nwall {results['wall_seconds']} s, CPU {results['cpu_seconds']} s ({workers} workers), "
        f"load {results['load_average']}; "
        f"written to {args.out}/"
    )
    return 0
