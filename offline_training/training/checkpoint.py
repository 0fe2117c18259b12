"""Training checkpoints: written atomically, verified before loading.

    OUT/checkpoints/step-00000100/
        model/                 the whole pipeline (Embody4DPipeline.save_pretrained: config.json + safetensors)
        ema.safetensors        EMA of the trainable parameters (when EMA is on)
        training_state.pt      optimizer, LR scheduler, RNG states (torch CPU/CUDA, the loss noise generator)
        state.json             step, stage, the run's config
        manifest.json          written last: size and SHA-256 of every other file

A checkpoint is written into `step-XXXXXXXX.tmp<pid>` and renamed when complete, so a kill leaves either the previous
checkpoints or a `.tmp*` directory, never a half-written `step-*`. Loading re-hashes every file against the manifest
and raises CheckpointError naming the file on any mismatch, before anything is loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

MANIFEST = "manifest.json"
STATE = "state.json"
TRAINING_STATE = "training_state.pt"


class CheckpointError(RuntimeError):
    """A checkpoint that is incomplete or corrupt; the message names the file."""


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST)


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def save_checkpoint(root: Path, step: int, write: Callable[[Path], None], state: dict[str, Any], keep: int = 2) -> Path:
    """Write checkpoint `step` under `root`: `write(tmp_dir)` fills the directory, then state.json and the manifest
    are added and the directory is renamed into place. Keeps the newest `keep` checkpoints (0: all)."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(step)
    tmp = root / f"{final.name}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    write(tmp)
    (tmp / STATE).write_text(json.dumps({"step": step, **state}, indent=1, sort_keys=True))
    manifest = {str(p.relative_to(tmp)): {"bytes": p.stat().st_size, "sha256": _digest(p)} for p in _files(tmp)}
    with open(tmp / MANIFEST, "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    if final.exists():  # a checkpoint of the same step from an earlier attempt
        shutil.rmtree(final)
    os.replace(tmp, final)
    if keep > 0:
        for old in list_checkpoints(root)[:-keep]:
            shutil.rmtree(old)
    return final


def list_checkpoints(root: Path) -> list[Path]:
    """Finished checkpoints under `root`, oldest first (directories `step-*` holding a manifest)."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step-*") if p.is_dir() and ".tmp" not in p.name and (p / MANIFEST).is_file())


def verify_checkpoint(directory: Path) -> dict[str, Any]:
    """Check every file of a checkpoint against its manifest (presence, size, SHA-256); returns state.json.

    Raises CheckpointError naming the first file that is missing, truncated or altered."""
    manifest_path = directory / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            f"{manifest_path}: missing or unreadable ({exc}); {directory} is not a complete "
            "checkpoint, delete it to resume from an earlier one"
        ) from exc
    for name, expected in manifest.items():
        path = directory / name
        if not path.is_file():
            raise CheckpointError(
                f"{path} is missing from checkpoint {directory}; delete the checkpoint to resume from an earlier one"
            )
        size = path.stat().st_size
        if size != expected["bytes"]:
            raise CheckpointError(
                f"{path} has {size} bytes, the manifest says {expected['bytes']}: the checkpoint is "
                "truncated; delete it to resume from an earlier one"
            )
        if _digest(path) != expected["sha256"]:
            raise CheckpointError(
                f"{path} does not match its SHA-256 in {manifest_path}: the checkpoint is corrupt; "
                "delete it to resume from an earlier one"
            )
    return json.loads((directory / STATE).read_text())


def load_training_state(directory: Path) -> dict[str, Any]:
    """training_state.pt of a verified checkpoint (tensors and plain containers only)."""
    return torch.load(directory / TRAINING_STATE, map_location="cpu", weights_only=True)


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    """Every RNG that the training step draws from: torch's global CPU (and CUDA) state and the loss generator."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "generator": generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
