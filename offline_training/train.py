"""`embody4d train`: the Embody4D training recipe (paper section 4, appendix C.4) with accelerate.

Stages, run in this order, each starting from the previous stage's `OUT/model` (`--init`):

    vae        the video VAE alone (reconstruction + KL); needed at tiny scale where no pretrained VAE exists
    estimator  the router's residual estimator (target: E(target) - E(warped)); frozen afterwards
    stage1     transformer + caption embedding on two-view compositional data (VAE, router frozen)
    stage2     as stage1 on pseudo-4D pairs, with the interaction-aware reference cross-attention frozen

One process on a CPU here; `accelerate launch -m offline_training.train ...` (or `accelerate launch $(which embody4d)
train ...`) data-parallel on many GPUs and nodes. Global batch `step` is a fixed function of (seed, step), split
across processes, and every random draw of a step comes from checkpointed generators, so `--resume` continues
bitwise identically to an uninterrupted run (on the same hardware and process count).

Writes OUT/checkpoints/step-*/ (see offline_training/training/checkpoint.py), OUT/train_log.csv (step, loss, lr,
samples_per_s), TensorBoard events in OUT/tensorboard/ when tensorboard is installed, OUT/loss.png, and the final
model OUT/model/ (EMA weights when --ema is set), loadable with Embody4DPipeline.from_pretrained and `embody4d eval`.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn

from model.clips import ClipRule
from model.pipeline import Embody4DPipeline
from offline_training.synth import add_config_arguments, config_from_args, option
from offline_training.training.batches import DEPTH_ALIGNS, StageClips, StepBatches, parse_depth_mix
from offline_training.training.checkpoint import (
    TRAINING_STATE,
    CheckpointError,
    list_checkpoints,
    load_training_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
    verify_checkpoint,
)
from offline_training.training.ema import EMA
from offline_training.training.losses import training_loss
from offline_training.training.stages import STAGES, set_training_stage

LOG_FIELDS = ("step", "loss", "lr", "samples_per_s", "elapsed_s")


@dataclasses.dataclass
class TrainConfig:
    """What `embody4d train` does; every field is also a command-line option (``--batch-size`` ...)."""

    stage: str = option("", "training stage", required=True, choices=STAGES)
    data: str = option("", "dataset directory (embody4d synth --split train)", required=True)
    out: str = option("", "run directory: checkpoints, logs, final model", required=True)
    preset: str = option("tiny", "model preset name or JSON path (fresh runs without --init)")
    init: str = option("", "start from this model directory (e.g. the previous stage's OUT/model)")
    steps: int = option(1000, "optimiser steps in total (a resumed run continues up to this)")
    batch_size: int = option(1, "clips per process per step")
    frames: int = option(0, "frames per training clip, 4k+1; 0 = the preset's window_frames")
    lr: float = option(1e-4, "peak learning rate (AdamW)")
    weight_decay: float = option(1e-2, "AdamW weight decay")
    warmup_steps: int = option(0, "linear learning-rate warm-up steps")
    max_grad_norm: float = option(1.0, "gradient clipping norm (0 = off)")
    ema: float = option(0.0, "EMA decay of the trained weights, e.g. 0.999 (0 = off); the final model gets the EMA")
    kl_weight: float = option(1e-6, "VAE stage: weight of the KL term")
    interaction_ramp_steps: int = option(
        0,
        "stage1: ramp the interaction-attention coefficient alpha from 0 to 1 "
        "over this many steps (0 = alpha 1 throughout)",
    )
    pseudo4d_fraction: float = option(
        0.0,
        "estimator/stage1: share of items drawn as pseudo-4D pairs instead of "
        "two-view pairs (1.0 = pseudo-4D only, the paper's Table 2 baseline)",
    )
    depth_mix: str = option(
        "clean,stereo,mono",
        "estimator/stage1/stage2: the source depth the condition is warped from, drawn per item among these depth "
        "models (model.depth_sensor: clean, stereo, mono), equal shares or NAME:WEIGHT "
        "('clean' = the simulator's depth only)",
    )
    depth_align: str = option(
        "robot",
        "how mono source depth is scaled before the warp: aligned to the robot's metric depth as the "
        "node aligns it (robot) or not at all (none)",
        choices=DEPTH_ALIGNS,
    )
    init_strength: float = option(
        0.0,
        "stage1/2: noise level the model's sampler starts from, saved with the model; "
        "below 1 training follows the path from the noised warp to the target "
        "(pipeline.init_strength; 0 = keep the model's setting)",
    )
    residual_decoding: bool = option(
        False,
        "turn the model's residual decoding on, saved with the model "
        "(pipeline.residual_decoding; off keeps the model's setting)",
        action=argparse.BooleanOptionalAction,
    )
    pixel_weight: float = option(
        0.0,
        "stage1/2 (flow): weight of the pixel loss, L1 + (1 - SSIM) of the decoded "
        "one-step estimate as the engines output it (0 = latent loss only)",
    )
    use_experts: bool = option(
        True,
        "stage1/2: train with the confidence-routed expert FFNs (--no-use-experts: "
        "they get no routes and stay zero, the ablation without experts)",
        action=argparse.BooleanOptionalAction,
    )
    use_interaction: bool = option(
        True,
        "stage1: interaction-aware attention on (--no-use-interaction keeps its "
        "curriculum alpha at 0, saved with the model, the ablation without it)",
        action=argparse.BooleanOptionalAction,
    )
    seed: int = option(0, "seed of the initial weights, data order, clip windows and noise")
    checkpoint_every: int = option(100, "write a checkpoint every N steps (and at the end)")
    keep_checkpoints: int = option(2, "keep the newest N checkpoints (0 = all)")
    resume: bool = option(
        False, "continue from the newest valid checkpoint in OUT/checkpoints", action=argparse.BooleanOptionalAction
    )
    num_threads: int = option(0, "torch CPU threads (0 = torch's default)")
    num_workers: int = option(
        0,
        "processes that build the next batches while the model trains (0 = build them "
        "in the training process); the batches are the same either way",
    )
    max_seconds: float = option(
        0.0,
        "stop after this much training time, with a checkpoint and the final model, "
        "even if --steps is not reached (0 = no limit)",
    )
    mixed_precision: str = option("no", "accelerate mixed precision", choices=("no", "fp16", "bf16"))
    progress: bool = option(True, "show a progress bar", action=argparse.BooleanOptionalAction)

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"--stage must be one of {STAGES}, got {self.stage!r}")
        if not self.data or not self.out:
            raise ValueError("--data DIR and --out DIR are required")
        if self.steps < 1 or self.batch_size < 1 or self.checkpoint_every < 1:
            raise ValueError("--steps, --batch-size and --checkpoint-every must be >= 1")
        if self.num_workers < 0 or self.max_seconds < 0:
            raise ValueError("--num-workers and --max-seconds must be >= 0")
        if self.frames and not ClipRule().is_valid(self.frames):
            raise ValueError(f"--frames must be 4k+1 (1, 5, 9, 13, ...), got {self.frames}")
        if not 0.0 <= self.pseudo4d_fraction <= 1.0:
            raise ValueError(f"--pseudo4d-fraction must be in [0, 1], got {self.pseudo4d_fraction}")
        parse_depth_mix(self.depth_mix)  # raises ValueError naming what is wrong
        if self.depth_align not in DEPTH_ALIGNS:
            raise ValueError(f"--depth-align must be one of {DEPTH_ALIGNS}, got {self.depth_align!r}")
        if self.pixel_weight < 0 or (self.pixel_weight and self.stage not in ("stage1", "stage2")):
            raise ValueError(
                f"--pixel-weight must be >= 0 and applies to stage1/stage2 only, got {self.pixel_weight} "
                f"for --stage {self.stage}"
            )
        if not 0.0 <= self.init_strength <= 1.0:
            raise ValueError(f"--init-strength must be in (0, 1], or 0 to keep the model's, got {self.init_strength}")
        if self.ema and not 0.0 < self.ema < 1.0:
            raise ValueError(f"--ema must be in (0, 1) or 0 (off), got {self.ema}")


class StageModule(nn.Module):
    """The pipeline's models as one module whose forward is the stage's loss, so that accelerate can wrap it
    (DistributedDataParallel sees every trained parameter)."""

    def __init__(self, pipeline: Embody4DPipeline, config: TrainConfig) -> None:
        super().__init__()
        self.parts = nn.ModuleDict(pipeline.models)
        self.pipeline, self.config = pipeline, config

    def forward(self, batch: dict[str, Any], generator: torch.Generator) -> torch.Tensor:
        c = self.config
        return training_loss(self.pipeline, batch, c.stage, generator, c.kl_weight, c.use_experts, c.pixel_weight)


def trainable_parameters(pipeline: Embody4DPipeline, stage: str) -> dict[str, nn.Parameter]:
    """Freeze per stage; the trained parameters by qualified name ("transformer.proj_out.weight")."""
    set_training_stage(pipeline, stage)
    return {
        f"{name}.{key}": p
        for name, module in pipeline.models.items()
        for key, p in module.named_parameters()
        if p.requires_grad
    }


def load_model(config: TrainConfig, checkpoint: Path | None) -> Embody4DPipeline:
    if checkpoint is not None:
        return Embody4DPipeline.from_pretrained(checkpoint / "model")
    if config.init:
        return Embody4DPipeline.from_pretrained(config.init)
    return Embody4DPipeline.from_preset(config.preset, seed=config.seed)


def latest_checkpoint(root: Path) -> Path | None:
    """The newest checkpoint, verified; CheckpointError (naming the file) when it is corrupt."""
    found = list_checkpoints(root)
    if not found:
        return None
    verify_checkpoint(found[-1])
    return found[-1]


class LossLog:
    """train_log.csv (truncated to `start_step` on resume, so a killed run leaves no duplicate rows) and
    TensorBoard scalars when tensorboard is installed."""

    def __init__(self, out: Path, start_step: int) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.path = out / "train_log.csv"
        rows = []
        if start_step and self.path.is_file():
            with open(self.path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= start_step]
        self.file = open(self.path, "w", newline="")
        self.writer = csv.DictWriter(self.file, LOG_FIELDS)
        self.writer.writeheader()
        self.writer.writerows(rows)
        self.tensorboard: Any = None  # a SummaryWriter where tensorboard is installed
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tensorboard = SummaryWriter(str(out / "tensorboard"), purge_step=start_step + 1)
        except ImportError:
            self.tensorboard = None

    def add(self, row: dict[str, float]) -> None:
        self.writer.writerow(row)
        self.file.flush()
        if self.tensorboard is not None:
            for key in ("loss", "lr", "samples_per_s"):
                self.tensorboard.add_scalar(f"train/{key}", row[key], int(row["step"]))

    def close(self) -> None:
        self.file.close()
        if self.tensorboard is not None:
            self.tensorboard.close()


def train(config: TrainConfig) -> dict[str, Any]:
    """Run (or resume) one stage; returns a summary (steps, final loss, mean samples/s, paths)."""
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from tqdm import tqdm

    from offline_training.data import open_dataset
    from offline_training.plot_curves import plot_curves

    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    # unused parameters: a step may not reach every expert or the interaction path (no region in the batch)
    accelerator = Accelerator(
        mixed_precision=config.mixed_precision,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    out = Path(config.out)
    checkpoints = out / "checkpoints"
    checkpoint = latest_checkpoint(checkpoints) if config.resume else None
    if checkpoint is None and list_checkpoints(checkpoints):
        raise FileExistsError(
            f"{checkpoints} holds checkpoints of an earlier run: pass --resume to continue it or choose a new --out"
        )
    state: dict[str, Any] = json.loads((checkpoint / "state.json").read_text()) if checkpoint else {"step": 0}
    if checkpoint is not None and state["config"]["stage"] != config.stage:
        raise CheckpointError(f"{checkpoint} is a {state['config']['stage']!r} checkpoint, not {config.stage!r}")
    torch.manual_seed(config.seed)

    pipeline = load_model(config, checkpoint).to(accelerator.device)
    if config.init_strength:
        pipeline.settings = dataclasses.replace(pipeline.settings, init_strength=config.init_strength)
    if config.residual_decoding:
        pipeline.settings = dataclasses.replace(pipeline.settings, residual_decoding=True)
    named = trainable_parameters(pipeline, config.stage)
    settings = pipeline.settings
    frames = config.frames or settings.window_frames
    clips = StageClips(
        open_dataset(config.data),
        config.stage,
        frames,
        config.seed,
        settings.height,
        settings.width,
        settings.condition_fill,
        config.pseudo4d_fraction,
        config.depth_mix,
        config.depth_align,
    )

    optimizer = torch.optim.AdamW(named.values(), lr=config.lr, weight_decay=config.weight_decay)
    warmup = max(config.warmup_steps, 1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
    ema = EMA(named, config.ema) if config.ema else None
    generator = torch.Generator().manual_seed(config.seed * 1000 + accelerator.process_index)
    if checkpoint is not None:
        training_state = load_training_state(checkpoint)
        optimizer.load_state_dict(training_state["optimizer"])
        scheduler.load_state_dict(training_state["scheduler"])
        set_rng_state(training_state["rng"][accelerator.process_index], generator)
        if ema is not None:
            ema.load_state_dict(safetensors.torch.load_file(checkpoint / "ema.safetensors"))
    module, optimizer, scheduler = accelerator.prepare(StageModule(pipeline, config), optimizer, scheduler)

    def write_checkpoint(step: int) -> None:
        rngs = (
            accelerator.gather_for_metrics([rng_state(generator)])
            if accelerator.num_processes > 1
            else [rng_state(generator)]
        )
        if not accelerator.is_main_process:
            return

        def write(directory: Path) -> None:
            pipeline.save_pretrained(directory / "model")
            torch.save(
                {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rngs},
                directory / TRAINING_STATE,
            )
            if ema is not None:
                safetensors.torch.save_file(ema.state_dict(), directory / "ema.safetensors")

        save_checkpoint(checkpoints, step, write, {"config": dataclasses.asdict(config)}, config.keep_checkpoints)

    step = int(state["step"])
    log = LossLog(out, step) if accelerator.is_main_process else None
    seconds = []
    started = time.perf_counter()
    bar = tqdm(
        total=config.steps,
        initial=step,
        desc=f"train {config.stage}",
        unit="step",
        disable=not (config.progress and accelerator.is_main_process),
    )
    loss_value = float("nan")
    batches = iter(
        torch.utils.data.DataLoader(
            StepBatches(
                clips,
                step,
                config.steps,
                config.batch_size,
                config.seed,
                accelerator.process_index,
                accelerator.num_processes,
            ),
            batch_size=None,
            num_workers=config.num_workers,
            pin_memory=accelerator.device.type == "cuda",
            # the loader draws its workers' base seed when iterated: from its own generator, not the global RNG that
            # the training step uses (and that a resumed run restores), or a resumed run would diverge
            generator=torch.Generator().manual_seed(config.seed),
        )
    )
    while step < config.steps:
        tick = time.perf_counter()
        if config.stage == "stage1":
            ramp = min(1.0, (step + 1) / config.interaction_ramp_steps) if config.interaction_ramp_steps else 1.0
            pipeline.transformer.set_interaction_curriculum(ramp if config.use_interaction else 0.0)
        batch = {
            k: v.to(accelerator.device, non_blocking=True) if torch.is_tensor(v) else v
            for k, v in next(batches).items()
        }
        with accelerator.autocast():
            loss = module(batch, generator)
        accelerator.backward(loss)
        if config.max_grad_norm:
            accelerator.clip_grad_norm_(list(named.values()), config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.update(named)
        step += 1
        loss_value = accelerator.gather(loss.detach()[None]).mean().item()
        seconds.append(time.perf_counter() - tick)
        rate = config.batch_size * accelerator.num_processes / seconds[-1]
        if log is not None:
            log.add(
                {
                    "step": step,
                    "loss": loss_value,
                    "lr": scheduler.get_last_lr()[0],
                    "samples_per_s": rate,
                    "elapsed_s": time.perf_counter() - started,
                }
            )
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.4f}")
        out_of_time = (
            config.max_seconds
            and accelerator.gather(
                torch.tensor([time.perf_counter() - started >= config.max_seconds], device=accelerator.device)
            )
            .any()
            .item()
        )
        if step % config.checkpoint_every == 0 or step == config.steps or out_of_time:
            write_checkpoint(step)
        if out_of_time:  # every process stops at the same step (the gather above)
            break
    bar.close()
    accelerator.wait_for_everyone()
    timed = seconds[1:]  # the first step pays one-off costs (kernel compilation, allocator warm-up)
    summary = {
        "stage": config.stage,
        "steps": step,
        "final_loss": loss_value,
        "model": str(out / "model"),
        "samples_per_s": config.batch_size * accelerator.num_processes * len(timed) / sum(timed) if timed else None,
        "median_step_s": sorted(timed)[len(timed) // 2] if timed else None,
    }
    if accelerator.is_main_process:
        assert log is not None  # the main process keeps the loss log
        log.close()
        if ema is not None:
            ema.copy_to(named)
        if config.stage == "vae":  # the diffusion stages expect unit-variance latents
            pipeline.vae.eval()
            probe = [clips[(i, 0)]["target"][None].to(accelerator.device) for i in range(min(len(clips), 64))]
            summary["vae_scaling_factor"] = pipeline.vae.calibrate_scaling_factor(probe)
        if config.stage == "estimator":  # routing thresholds in this VAE's latent units
            pipeline.router.eval()
            summary["routing_thresholds"] = calibrate_router(pipeline, clips, accelerator.device)
        pipeline.save_pretrained(out / "model")
        plot_curves([out / "train_log.csv"], out / "loss.png")
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


@torch.no_grad()
def calibrate_router(
    pipeline: Embody4DPipeline, clips: StageClips, device: torch.device, num_items: int = 64
) -> dict[str, float]:
    """Calibrate the trained estimator's routing thresholds on the first `num_items` training items."""
    warped, coverage = [], []
    for i in range(min(len(clips), num_items)):
        item = clips[(i, 0)]
        cond = pipeline.encode_conditions(
            item["source"][None].to(device),
            item["warped"][None].to(device),
            item["coverage"][None].to(device),
            captions=[None],
        )
        warped.append(cond.warped)
        coverage.append(cond.coverage)
    return pipeline.router.calibrate_thresholds(warped, coverage)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, TrainConfig)


def run(args: argparse.Namespace) -> int:
    print(json.dumps(train(config_from_args(TrainConfig, args)), indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="offline_training.train", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
