"""The import-layer contracts of pyproject.toml ([tool.importlinter]) hold, and they would catch a layering violation
or an import cycle: run on a copy of the packages with one bad import added, `lint-imports` must fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("model", "embody4d_ros", "offline_training")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(
    not LINT_IMPORTS.exists(), reason="import-linter is not installed (pip install -e '.[dev]')"
)


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )


def copy_of_the_packages(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("weights", "__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def add_import(module: Path, statement: str) -> None:
    module.write_text(module.read_text() + f"\n{statement}  # added by the test\n")


def test_the_contracts_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout and "0 broken" in result.stdout


def test_geometry_importing_the_engines_breaks_the_layers(tmp_path):
    root = copy_of_the_packages(tmp_path)
    add_import(root / "model" / "geometry" / "base.py", "import model.engines.base")
    result = lint_imports(root)
    assert result.returncode != 0
    assert "the virtual-view glue above the engines above the geometry BROKEN" in result.stdout, result.stdout
    assert "model.geometry.base -> model.engines.base" in result.stdout


def test_a_cycle_between_siblings_breaks_the_acyclic_contract(tmp_path):
    root = copy_of_the_packages(tmp_path)
    # model.vae imports model.clips; the reverse import closes a cycle that no layer contract covers
    add_import(root / "model" / "clips.py", "import model.vae")
    result = lint_imports(root)
    assert result.returncode != 0
    assert "no import cycles between sibling modules BROKEN" in result.stdout, result.stdout


def test_the_ros_side_importing_offline_training_breaks_the_layers(tmp_path):
    root = copy_of_the_packages(tmp_path)
    add_import(root / "embody4d_ros" / "runtime.py", "import offline_training.synth")
    result = lint_imports(root)
    assert result.returncode != 0
    assert "geometry below engines below the ROS side below offline training BROKEN" in result.stdout, result.stdout
    assert "embody4d_ros.runtime -> offline_training.synth" in result.stdout
