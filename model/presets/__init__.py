"""Model presets shipped as JSON beside this file: tiny (CPU real time), base, trajectorycrafter-5b.

A preset has one section per component (vae, transformer, router, text_encoder, scheduler, pipeline); each section
holds that component's constructor config.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PRESET_DIR = Path(__file__).resolve().parent
SECTIONS = ("vae", "transformer", "router", "text_encoder", "scheduler", "pipeline")


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))


def load_preset(name_or_path: str | Path) -> dict[str, Any]:
    """A preset by name (see `available_presets`) or a path to a preset JSON file."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PRESET_DIR / f"{name_or_path}.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"no preset {str(name_or_path)!r}; choose one of {available_presets()} or give a JSON path"
        )
    preset = json.loads(path.read_text())
    missing = [s for s in SECTIONS if s not in preset]
    if missing:
        raise ValueError(f"preset {path} lacks sections {missing}; expected all of {list(SECTIONS)}")
    return preset
