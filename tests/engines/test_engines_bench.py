"""`embody4d bench`: the table and its statistics (the timings themselves go to docs/BENCHMARKS.md, not tests)."""

from __future__ import annotations

import numpy as np
import pytest

from embody4d_ros.bench import Result, markdown, summarise, synthetic_request


def test_summary_statistics():
    seconds = [0.1, 0.2, 0.3, 0.4, 1.0]
    r = summarise("onnxruntime", seconds, 5, "clip", (240, 320), 2, "cpu")
    assert r.median_ms == pytest.approx(300 / 5)
    assert r.p99_ms == pytest.approx(np.percentile(np.asarray(seconds) * 1e3 / 5, 99)) and r.p99_ms > 190
    assert r.fps == pytest.approx(25 / 2.0)


def test_table_speedup_against_torch():
    rows = [
        Result("torch", "image", 240, 320, 1, 2, 300.0, 320.0, 3.3, "cpu"),
        Result("onnxruntime", "image", 240, 320, 1, 2, 100.0, 110.0, 10.0, "cpu"),
        Result("onnxruntime", "image", 384, 672, 1, 2, 250.0, 260.0, 4.0, "cpu"),
    ]
    lines = markdown(rows).splitlines()
    assert "| 3.00× |" in lines[3] and "| 1.00× |" in lines[2] and "| – |" in lines[4]


def test_synthetic_request_shapes():
    request = synthetic_request(5, 48, 64)
    assert request.num_frames == 5 and request.target_hw == (48, 64)
    assert 0 < request.warp_mask.mean() < 1 and request.target_interaction.any()


def test_cli_runs_every_engine_side_by_side(capsys, tmp_path):
    from embody4d_ros.cli import main

    assert (
        main(
            [
                "bench",
                "--engines",
                "warp,torch,onnxruntime",
                "--resolutions",
                "32x48",
                "--steps",
                "1",
                "--repeats",
                "2",
                "--warmup",
                "0",
                "--threads",
                "1",
                "--export-root",
                str(tmp_path),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    table = out[out.rindex("| engine |") :].strip().splitlines()
    assert [line.split("|")[1].strip() for line in table[2:]] == ["warp", "torch", "onnxruntime"]
    assert "threads 1" in out and (tmp_path / "image-32x48-f1-s1" / "manifest.json").is_file()
