"""bench/gpu_check.py: its --smoke mode runs every section on the CPU; results are written as they come, a section
that fails or runs out of time does not cost the others theirs."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules["gpu_check"]


def run(gpu_check, out: Path, *args: str) -> dict:
    assert gpu_check.main(["--out", str(out), "--smoke", *args]) == 0
    result = json.loads((out / "gpu_check.json").read_text())
    markdown = (out / "gpu_check.md").read_text()
    for name in result["sections"]:
        assert f"## {name} (" in markdown
    return result


def test_warp_parity_and_robot_layer(gpu_check, tmp_path):
    result = run(gpu_check, tmp_path, "--sections", "warp,robot")
    warp, robot = result["sections"]["warp"], result["sections"]["robot"]
    assert warp["status"] == "done" and len(warp["rows"]) == 1
    row = warp["rows"][0]
    # the numba kernel and the torch back end are two implementations of one algorithm: they must agree exactly
    assert row["mask_mismatch_px"] == 0 and row["max_colour_diff"] == 0.0 and row["max_depth_diff_m"] == 0.0
    assert row["holes_pct"] > 0  # the scene has disocclusions, so the comparison covers holes too
    assert robot["status"] == "done" and len(robot["rows"]) == 1
    row = robot["rows"][0]
    assert row["device"] == "cpu" and row["size"] == "48x64"
    stages = [row[f"{name}_ms"] for name in ("source_render", "virtual_render", "composition", "scene_memory_update")]
    assert all(ms > 0 for ms in stages)
    assert row["layer_without_warp_ms"] >= sum(stages) - row["scene_warp_ms"] - 1e-6


def test_robot_hook_is_timed_when_present(gpu_check, tmp_path, monkeypatch):
    (tmp_path / "fake_robot_layer.py").write_text(
        "def gpu_check_case(device, smoke):\n    return {'case': 'render', 'device': device, 'smoke': smoke}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    result = run(gpu_check, tmp_path / "out", "--sections", "robot", "--robot-module", "fake_robot_layer")
    assert result["sections"]["robot"]["rows"] == [{"case": "render", "device": "cpu", "smoke": True}]
    result = run(gpu_check, tmp_path / "out2", "--sections", "robot", "--robot-module", "json")
    assert "has no gpu_check_case" in result["sections"]["robot"]["reason"]


def test_out_of_time_and_errors_are_recorded_per_section(gpu_check, tmp_path, monkeypatch):
    def broken(*args):
        raise RuntimeError("planted failure")

    monkeypatch.setattr(gpu_check, "small_train_section", broken)
    result = run(gpu_check, tmp_path, "--sections", "small-train,warp", "--budget-s", "0.01")
    sections = result["sections"]
    assert sections["small-train"]["status"] == "error" and "planted failure" in sections["small-train"]["reason"]
    assert sections["warp"]["status"] == "partial" and "skipped" in sections["warp"]["reason"]
    assert sections["warp"]["rows"] == []


@pytest.mark.slow  # every section at tiny sizes: ~60 s on a loaded 2-core CPU
def test_smoke_runs_every_section(gpu_check, tmp_path):
    result = run(gpu_check, tmp_path)
    sections = result["sections"]
    assert list(sections) == list(gpu_check.SECTIONS)
    assert all(sections[name]["status"] == "done" for name in gpu_check.SECTIONS), {
        name: s.get("reason") for name, s in sections.items()
    }
    modes = [(r["mode"], r["steps"]) for r in sections["5b"]["rows"]]
    assert ("image", 1) in modes and ("clip", 2) in modes and ("train stage1", "1 optimiser step") in modes
    compile_row = sections["5b"]["rows"][-1]
    assert compile_row["eager_ms"] > 0 and compile_row["compiled_ms"] > 0
    assert len(sections["engine"]["rows"]) == 2 * 2 * 2  # tiny and base, image and clip, 1 and 2 steps
    for row in sections["node"]["rows"]:
        assert row["published"] == 2  # one warm-up and one timed frame, each published once
    for row in sections["small-train"]["rows"]:
        assert row["loss"] == row["loss"] and row["samples_per_s"] > 0  # not NaN
