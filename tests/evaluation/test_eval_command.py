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
    assert (
        main(["eval", "--data", setup["data"], "--engine", "warp", "--baselines", "telea", "--out", str(tmp_path)]) == 0
    )
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


def row_keys(result: dict) -> set[tuple[int, str]]:
    return {(row["sample"], row["method"]) for row in result["samples"]}


def unrouted(row: dict[str, float]) -> dict[str, float]:
    """The metrics that do not depend on the router's copy / repair / inpaint regions."""
    return {k: v for k, v in row.items() if not any(route in k for route in ("copy", "repair", "inpaint"))}


def test_image_mode_generates_frame_by_frame(setup, tmp_path, monkeypatch):
    from model.engines.torch_engine import TorchEngine

    calls: list[int] = []
    generate = TorchEngine.generate

    def spy(self, request):
        calls.append(request.num_frames)
        return generate(self, request)

    clip = evaluate(
        EvalConfig(
            data=setup["data"],
            model=setup["model"],
            out=str(tmp_path / "clip"),
            baselines="warp,telea",
            max_samples=1,
            num_threads=2,
            images=0,
        )
    )
    monkeypatch.setattr(TorchEngine, "generate", spy)
    image = evaluate(
        EvalConfig(
            data=setup["data"],
            model=setup["model"],
            out=str(tmp_path / "image"),
            baselines="warp,telea",
            mode="image",
            max_samples=1,
            num_threads=2,
            images=0,
        )
    )
    assert calls and set(calls) == {1}, "image mode should send one frame per generation"
    assert len(calls) == 5  # 1 sample x 5 frames, model only
    assert row_keys(image) == row_keys(clip) and list(image["mean"]) == list(clip["mean"]) == ["model", "warp", "telea"]
    for row in image["mean"].values():
        assert 0 < row["psnr"] < 100 and -1 <= row["ssim"] <= 1
        assert any(not math.isnan(row[f"psnr_{r}"]) for r in ("copy", "repair", "inpaint"))
    # the warp baselines work per frame anyway: the same frames in both modes (the routed-region columns differ,
    # the router sees one frame at a time); the network's frames do not
    for name in ("warp", "telea"):
        assert unrouted(image["mean"][name]) == pytest.approx(unrouted(clip["mean"][name]), nan_ok=True)
    assert unrouted(image["mean"]["model"]) != pytest.approx(unrouted(clip["mean"]["model"]), nan_ok=True)
    saved = json.loads((tmp_path / "image" / "results.json").read_text())
    assert any("image mode" in note for note in saved["notes"])
    assert not any("clip mode" in note for note in saved["notes"])
    assert saved["config"]["mode"] == "image"
    assert any("clip mode" in note for note in clip["notes"])


def test_pushpull_baseline_next_to_the_model(setup, tmp_path):
    result = evaluate(
        EvalConfig(
            data=setup["data"],
            model=setup["model"],
            out=str(tmp_path / "model"),
            baselines="warp,pushpull",
            num_threads=2,
            images=0,
        )
    )
    means = result["mean"]
    assert list(means) == ["model", "warp", "pushpull"]
    assert {row["method"] for row in result["samples"]} == {"model", "warp", "pushpull"}
    # filled holes beat black ones where the warp left holes
    assert means["pushpull"]["psnr_disoccluded"] > means["warp"]["psnr_disoccluded"] + 3
    # the row is the warp engine's: the same numbers as the main row of --engine warp
    warp_only = evaluate(
        EvalConfig(data=setup["data"], engine="warp", baselines="", out=str(tmp_path / "warp"), images=0)
    )
    pushpull = unrouted(means["pushpull"])
    assert pushpull == pytest.approx(unrouted(warp_only["mean"]["pushpull"]), nan_ok=True)
    assert "| pushpull |" in (tmp_path / "model" / "results.md").read_text()


def test_warp_engine_with_pushpull_baseline_is_refused():
    with pytest.raises(ValueError, match="drop pushpull"):
        EvalConfig(data="d", out="o", engine="warp", baselines="telea,pushpull")
    with pytest.raises(ValueError, match="unknown baselines"):
        EvalConfig(data="d", out="o", engine="warp", baselines="push-pull")
    assert "pushpull" in EvalConfig(data="d", out="o", model="m", baselines="pushpull").baseline_list
