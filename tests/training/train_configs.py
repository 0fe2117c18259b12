"""The TrainConfig the training tests start from (imported by name, like tests/bag/bag_fixtures.py)."""

from pathlib import Path

from offline_training.train import TrainConfig


def toy_config(toy: tuple[str, str], out: Path, **overrides) -> TrainConfig:
    """A short stage-1 run on the `toy` fixture's dataset and preset, writing to `out`; `overrides` set any field."""
    data, preset = toy
    base = dict(stage="stage1", data=data, out=str(out), preset=preset, steps=2, batch_size=2, lr=1e-3, progress=False)
    return TrainConfig(**{**base, **overrides})
