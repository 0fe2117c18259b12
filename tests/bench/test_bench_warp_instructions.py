"""bench/warp_instructions.py under valgrind: every stage of both real-depth cases is counted, and the counts add up
the way the warp is built (its stages are parts of the whole call)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("valgrind") is None or shutil.which("cc") is None, reason="needs valgrind and cc")
def test_instruction_counts_cover_every_stage_and_add_up(tmp_path):
    out = tmp_path / "counts.json"
    subprocess.run([sys.executable, str(ROOT / "bench" / "warp_instructions.py"), "--json", str(out)], check=True)
    counts = json.loads(out.read_text())
    cases = sorted({label.split(":")[0] for label in counts})
    assert cases, "no measured call was counted"
    for case in cases:
        stage = {name: counts[f"{case}:{name}"] for name in ("splat", "forward_warp", "skirts", "mesh", "coverage")}
        # a 480x640 frame: every pixel costs the splat at least a few instructions
        assert stage["splat"] > 5 * 480 * 640
        # the three kernel stages run inside forward_warp, which also validates its inputs
        assert stage["skirts"] + stage["mesh"] + stage["coverage"] < stage["forward_warp"]
        assert min(stage["skirts"], stage["coverage"]) > 480 * 640
