"""embody4d train: batches built in worker processes are the batches built in the training process; --max-seconds
stops a run early with a checkpoint and a final model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import safetensors.torch
import torch
from train_configs import toy_config

from offline_training.data import open_dataset
from offline_training.train import TrainConfig, train
from offline_training.training.batches import StageClips, StepBatches, batch_indices, collate


def run_config(toy: tuple[str, str], out: Path, **kw) -> TrainConfig:
    return toy_config(toy, out, **{**dict(frames=1, checkpoint_every=10, pseudo4d_fraction=0.5), **kw})


def test_worker_batches_equal_in_process_batches(toy):
    data, _ = toy
    clips = StageClips(open_dataset(data), "stage1", 1, seed=3, height=32, width=48, pseudo4d_fraction=0.5)
    loader = torch.utils.data.DataLoader(StepBatches(clips, 4, 7, batch_size=2, seed=3), batch_size=None, num_workers=2)
    fetched = list(loader)
    assert len(fetched) == 3
    for step, batch in zip(range(4, 7), fetched):
        # the independent path: the same keys fetched one by one in this process
        expected = collate([clips[key] for key in batch_indices(step, 2, len(clips), 3)])
        assert batch.keys() == expected.keys()
        for key, value in expected.items():
            assert torch.equal(batch[key], value) if torch.is_tensor(value) else batch[key] == value, (step, key)


@pytest.mark.slow  # two training runs: ~20 s on a loaded 2-core CPU
def test_workers_train_the_same_weights(toy, tmp_path):
    train(run_config(toy, tmp_path / "inline"))
    train(run_config(toy, tmp_path / "workers", num_workers=2))
    name = "model/transformer/diffusion_pytorch_model.safetensors"
    a = safetensors.torch.load_file(tmp_path / "inline" / name)
    b = safetensors.torch.load_file(tmp_path / "workers" / name)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_max_seconds_stops_early_with_a_model(toy, tmp_path):
    summary = train(run_config(toy, tmp_path, steps=50, max_seconds=1e-9))
    assert summary["steps"] == 1  # the limit is checked after each step
    assert (tmp_path / "checkpoints" / "step-00000001" / "manifest.json").is_file()
    assert json.loads((tmp_path / "summary.json").read_text())["steps"] == 1
    assert (tmp_path / "model" / "pipeline_config.json").is_file()
