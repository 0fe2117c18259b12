"""embody4d train: loss goes down on a fixed mini-batch, bitwise-exact resume, corrupt checkpoints refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import safetensors.torch
import torch
from train_configs import toy_config

from model.pipeline import Embody4DPipeline
from offline_training.data import open_dataset
from offline_training.train import StageModule, TrainConfig, train, trainable_parameters
from offline_training.training.batches import StageClips, collate
from offline_training.training.checkpoint import CheckpointError, list_checkpoints

torch.set_num_threads(2)


def config(toy: tuple[str, str], out: Path, **kw) -> TrainConfig:
    return toy_config(toy, out, **{**dict(frames=5, checkpoint_every=1, ema=0.9), **kw})


def weights(run: Path, step: int) -> dict[str, torch.Tensor]:
    model = run / "checkpoints" / f"step-{step:08d}" / "model"
    out = {}
    for part in ("transformer", "text_encoder", "router", "vae"):
        out |= {
            f"{part}.{k}": v
            for k, v in safetensors.torch.load_file(model / part / "diffusion_pytorch_model.safetensors").items()
        }
    return out


@pytest.mark.parametrize(
    "stage,options",
    [
        ("estimator", {}),
        ("stage1", {}),
        ("stage1", {"pixel_weight": 1.0, "residual_decoding": True}),
        pytest.param("vae", {}, marks=pytest.mark.slow),
        pytest.param("stage2", {}, marks=pytest.mark.slow),
    ],
)
def test_steps_lower_loss_on_fixed_batch(toy, stage, options):
    data, preset = toy
    pipeline = Embody4DPipeline.from_preset(preset, seed=0)
    pipeline.settings.residual_decoding = options.get("residual_decoding", False)
    params = trainable_parameters(pipeline, stage)
    module = StageModule(pipeline, TrainConfig(stage=stage, data=data, out="unused", **options))
    clips = StageClips(open_dataset(data), stage, 1, seed=0, height=32, width=48)  # image mode: fast
    batch = collate([clips[0, 0]])
    optimizer = torch.optim.AdamW(params.values(), lr=3e-3, weight_decay=0.0)

    def loss() -> torch.Tensor:  # same noise and time every step: only the weights change
        torch.manual_seed(0)
        return module(batch, torch.Generator().manual_seed(0))

    with torch.no_grad():
        before = loss().item()
    for _ in range(8):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    with torch.no_grad():
        after = loss().item()
    assert after < 0.8 * before, (before, after)


def test_stage_freezing(toy):
    _, preset = toy
    pipeline = Embody4DPipeline.from_preset(preset, seed=0)
    names = trainable_parameters(pipeline, "stage2")
    assert names and not any(n.startswith(("vae.", "router.")) for n in names)
    assert not any("perceiver_cross_attention" in n or "ref_patch_embed" in n for n in names)
    assert set(n.split(".")[0] for n in trainable_parameters(pipeline, "vae")) == {"vae"}
    assert set(n.split(".")[0] for n in trainable_parameters(pipeline, "estimator")) == {"router"}


@pytest.mark.parametrize("stage", ["stage1", pytest.param("vae", marks=pytest.mark.slow)])
def test_resume_is_bitwise_identical(toy, tmp_path, stage):
    straight = tmp_path / "straight"
    train(config(toy, straight, stage=stage))
    split = tmp_path / "split"
    train(config(toy, split, stage=stage, steps=1))  # stops after the step-1 checkpoint, like a kill right after it
    train(config(toy, split, stage=stage, resume=True))
    a, b, first = weights(straight, 2), weights(split, 2), weights(straight, 1)
    assert a.keys() == b.keys()
    assert any(not torch.equal(a[k], first[k]) for k in a), "training did not change the weights"
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ema_a = safetensors.torch.load_file(straight / "checkpoints/step-00000002/ema.safetensors")
    ema_b = safetensors.torch.load_file(split / "checkpoints/step-00000002/ema.safetensors")
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)
    log = (split / "train_log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in log] == ["step", "1", "2"]
    assert (split / "loss.png").stat().st_size > 0


def test_corrupt_checkpoint_is_refused(toy, tmp_path):
    run = tmp_path / "run"
    train(config(toy, run, steps=1, ema=0.0))
    weights_file = list_checkpoints(run / "checkpoints")[-1] / "model/transformer/diffusion_pytorch_model.safetensors"
    data = bytearray(weights_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights_file.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256.*corrupt"):
        train(config(toy, run, steps=2, ema=0.0, resume=True))
    weights_file.write_bytes(bytes(data[:-10]))
    with pytest.raises(CheckpointError, match="truncated"):
        train(config(toy, run, steps=2, ema=0.0, resume=True))


def test_existing_run_needs_resume(toy, tmp_path):
    train(config(toy, tmp_path, steps=1))
    with pytest.raises(FileExistsError, match="--resume"):
        train(config(toy, tmp_path, steps=2))


def test_resolution_mismatch_is_refused(toy, tmp_path):
    with pytest.raises(ValueError, match="32x48 but the model works at 240x320"):
        train(config(toy, tmp_path, preset="tiny"))


@pytest.mark.slow
def test_killed_run_resumes_from_last_checkpoint(toy, tmp_path):
    """A real SIGKILL mid-run through the CLI; the resumed run ends bitwise where an uninterrupted one does."""
    data, preset = toy
    args = [
        sys.executable,
        "-m",
        "embody4d_ros.cli",
        "train",
        "--stage",
        "stage1",
        "--data",
        data,
        "--preset",
        preset,
        "--frames",
        "5",
        "--batch-size",
        "2",
        "--steps",
        "8",
        "--checkpoint-every",
        "2",
        "--num-threads",
        "1",
        "--no-progress",
        "--keep-checkpoints",
        "0",
    ]
    subprocess.run(args + ["--out", str(tmp_path / "straight")], check=True, capture_output=True)
    run = tmp_path / "killed"
    proc = subprocess.Popen(args + ["--out", str(run)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (run / "checkpoints" / "step-00000004").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "model").exists(), "the run finished before it could be killed"
    subprocess.run(args + ["--out", str(run), "--resume"], check=True, capture_output=True)
    a, b = weights(tmp_path / "straight", 8), weights(run, 8)
    assert all(torch.equal(a[k], b[k]) for k in a)
