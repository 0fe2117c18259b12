"""embody4d eval: table, images and baselines through one command; resolution mismatch refused."""
from __future__ import annotations

import json
import math

import pytest

from embody4d_ros.cli import main
from model.pipeline import Embody4DPipeline
from offline_training.evaluate import EvalConfig, evaluate
from offline_training.training.toy import ToyDataset, toy_preset


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("eval")
    data = ToyDataset(str(root / "test"), num_samples=2, num_frames=5, split="test", first_index=50).write()
    model = root / "model"
    Embody4DPipeline.from_preset(toy_preset(str(root / "preset.json")), seed=0).save_pretrained(model)
    return {"data": data, "model": str(model), "root": str(root)}


def test_model_and_baselines(setup, tmp_path):
    result = evaluate(EvalConfig(data=setup["data"], model=setup["model"], out=str(tmp_path), num_threads=2))
    means = result["mean"]
    assert list(means) == ["model", "warp", "telea", "no-experts"]
    for row in means.values():
        assert 0 < row["psnr"] < 100 and -1 <= row["ssim"] <= 1
        assert not math.isnan(row["psnr_disoccluded"])
        assert any(not math.isnan(row[f"psnr_{r}"]) for r in ("copy", "repair", "inpaint"))
    # holes left black are worse than Telea's fill where the warp left holes; where the warp landed they agree
    assert means["telea"]["psnr_disoccluded"] > means["warp"]["psnr_disoccluded"] + 3
    table = (tmp_path / "results.md").read_text()
    assert table.startswith("| method | psnr | ssim |") and "| telea |" in table and "LPIPS" in table
    assert len(list((tmp_path / "images").glob("sample-*.png"))) == 2
    assert json.loads((tmp_path / "results.json").read_text())["mean"].keys() == means.keys()


def test_warp_engine_through_the_cli(setup, tmp_path, capsys):
    assert main(["eval", "--data", setup["data"], "--engine", "warp", "--baselines", "telea", "--out",
                 str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| pushpull |" in out and "| telea |" in out and "routed-region columns need" in out


def test_resolution_mismatch_is_refused(setup, tmp_path):
    model = tmp_path / "big"
    Embody4DPipeline.from_preset("tiny", seed=0).save_pretrained(model)
    with pytest.raises(ValueError, match="works at 240x320 but the test data is 32x48"):
        evaluate(EvalConfig(data=setup["data"], model=str(model), out=str(tmp_path / "out")))


def test_no_experts_needs_a_model():
    with pytest.raises(ValueError, match="no-experts baseline ablates a network"):
        EvalConfig(data="d", out="o", engine="warp", baselines="warp,no-experts")
