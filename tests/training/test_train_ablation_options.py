"""embody4d train's ablation switches (use_experts, use_interaction, pseudo4d_fraction), the conditioning of the
training batches, and the VAE stage's latent scaling calibration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import safetensors.torch
import torch
from train_configs import toy_config

from model.pipeline import Embody4DPipeline
from model.vae import Embody4DVAE
from offline_training.data import open_dataset
from offline_training.train import TrainConfig, train
from offline_training.training.batches import StageClips

torch.set_num_threads(1)


def config(toy: tuple[str, str], out: Path, **kw) -> TrainConfig:
    return toy_config(toy, out, **{**dict(batch_size=1, frames=5, checkpoint_every=2, num_threads=1), **kw})


def saved_transformer(run: Path) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(run / "model" / "transformer" / "diffusion_pytorch_model.safetensors")


def is_expert(name: str) -> bool:
    return ".experts." in name


@pytest.fixture(scope="module")
def runs(toy, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """2-step stage1 runs from the same initial weights: default, without experts, without interaction, and trained
    for a sampler that starts from the noised warp."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name, kw in {
        "default": {},
        "no-experts": {"use_experts": False},
        "no-interaction": {"use_interaction": False},
        "warp-start": {"init_strength": 0.3},
    }.items():
        train(config(toy, root / name, **kw))
        out[name] = root / name
    return out


@pytest.fixture(scope="module")
def initial(toy) -> dict[str, torch.Tensor]:
    """The transformer a stage1 run with seed 0 starts from."""
    return {k: v.clone() for k, v in Embody4DPipeline.from_preset(toy[1], seed=0).transformer.state_dict().items()}


def test_without_experts_the_experts_stay_at_init(runs, initial):
    saved = saved_transformer(runs["no-experts"])
    experts = [k for k in saved if is_expert(k)]
    assert experts, "the toy preset has expert FFNs"
    assert set(experts) == {k for k in initial if is_expert(k)}
    for k in experts:
        assert torch.equal(saved[k], initial[k]), k
    # ... while the rest of the transformer did train
    assert any(not torch.equal(saved[k], initial[k]) for k in saved if not is_expert(k) and k != "interaction_alpha")


def test_with_experts_the_experts_train(runs, initial):
    saved = saved_transformer(runs["default"])
    changed = [k for k in saved if is_expert(k) and not torch.equal(saved[k], initial[k])]
    assert changed, "use_experts=True left every expert parameter at its initial value"
    # the zero-initialised output projections are the first to move
    assert any(k.endswith("net.2.weight") and saved[k].abs().max() > 0 for k in changed)


def test_interaction_alpha_saved(runs):
    assert float(saved_transformer(runs["default"])["interaction_alpha"]) == 1.0
    assert float(saved_transformer(runs["no-interaction"])["interaction_alpha"]) == 0.0
    loaded = Embody4DPipeline.from_pretrained(str(runs["no-interaction"] / "model"))
    assert float(loaded.transformer.interaction_alpha) == 0.0
    # the ablation switch only touches alpha: the experts still train there
    saved = saved_transformer(runs["no-interaction"])
    assert any(saved[k].abs().max() > 0 for k in saved if is_expert(k) and k.endswith("net.2.weight"))


def test_pseudo4d_fraction_selects_the_pairs(toy):
    samples = open_dataset(toy[0])
    keys = [(i, epoch) for i in range(len(samples)) for epoch in range(4)]
    for stage in ("stage1", "estimator"):
        pseudo = StageClips(samples, stage, 5, seed=0, height=32, width=48, pseudo4d_fraction=1.0)
        for key in keys[:3]:
            item = pseudo[key]
            assert torch.equal(item["source"], item["target"]), (stage, key)
        two_view = StageClips(samples, stage, 5, seed=0, height=32, width=48, pseudo4d_fraction=0.0)
        for key in keys[:3]:
            item = two_view[key]
            assert not torch.equal(item["source"], item["target"]), (stage, key)
    mixed = StageClips(samples, "stage1", 5, seed=0, height=32, width=48, pseudo4d_fraction=0.5)
    kinds = {torch.equal(item["source"], item["target"]) for item in (mixed[key] for key in keys)}
    assert kinds == {True, False}, "a fraction of 0.5 should draw both kinds of pair over 8 items"


def test_pseudo4d_fraction_is_validated(toy, tmp_path):
    samples = open_dataset(toy[0])
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="pseudo4d_fraction"):
            StageClips(samples, "stage1", 5, seed=0, height=32, width=48, pseudo4d_fraction=bad)
        with pytest.raises(ValueError, match="pseudo4d-fraction"):
            config(toy, tmp_path, pseudo4d_fraction=bad)
    with pytest.raises(ValueError, match="condition_fill"):
        StageClips(samples, "stage1", 5, seed=0, height=32, width=48, condition_fill="bogus")


@pytest.mark.parametrize("pseudo4d_fraction", [0.0, 1.0])
def test_batches_use_the_condition_fill(toy, pseudo4d_fraction):
    """The warped clip of a batch is what the network sees at inference: holes black for "none" (-1 in network
    form), filled for "pushpull", the covered pixels identical."""
    samples = open_dataset(toy[0])
    items = {
        fill: StageClips(
            samples, "stage1", 5, seed=0, height=32, width=48, condition_fill=fill, pseudo4d_fraction=pseudo4d_fraction
        )[1, 0]
        for fill in ("none", "pushpull")
    }
    none, filled = items["none"], items["pushpull"]
    covered = (none["coverage"] > 0).expand_as(none["warped"])
    assert torch.equal(none["coverage"], filled["coverage"])
    assert (~covered).any() and covered.any()
    assert torch.equal(none["warped"][covered], filled["warped"][covered])
    # outside the coverage: black holes for "none" (a valid pixel of zero coverage is the same in both)
    black = (none["warped"] == -1).all(0, keepdim=True).expand_as(none["warped"])
    assert (black | (none["warped"] == filled["warped"]))[~covered].all()
    holes = black & ~covered
    assert holes.any() and (filled["warped"][holes] > -1).any()


def test_vae_stage_calibrates_the_scaling_factor(toy, tmp_path):
    summary = train(config(toy, tmp_path / "vae", stage="vae", steps=1))
    factor = summary["vae_scaling_factor"]
    assert isinstance(factor, float) and factor > 0
    assert json.loads((tmp_path / "vae" / "summary.json").read_text())["vae_scaling_factor"] == factor
    saved = json.loads((tmp_path / "vae" / "model" / "vae" / "config.json").read_text())
    assert saved["scaling_factor"] == factor
    assert factor != 1.0  # the preset's factor: the calibration did replace it
    loaded = Embody4DPipeline.from_pretrained(str(tmp_path / "vae" / "model"))
    assert loaded.vae.config.scaling_factor == factor


def test_stage1_does_not_recalibrate(runs, toy):
    saved = json.loads((runs["default"] / "model" / "vae" / "config.json").read_text())
    preset = json.loads(Path(toy[1]).read_text())
    assert saved["scaling_factor"] == preset["vae"]["scaling_factor"]
    assert "vae_scaling_factor" not in json.loads((runs["default"] / "summary.json").read_text())


def test_calibrated_latents_have_unit_std():
    torch.manual_seed(0)
    vae = Embody4DVAE(
        block_out_channels=(8, 8, 16, 16), layers_per_block=1, norm_num_groups=4, latent_channels=16
    ).eval()
    g = torch.Generator().manual_seed(1)
    videos = [torch.rand(1, 3, 5, 32, 48, generator=g) * 2 - 1, torch.rand(2, 3, 1, 32, 48, generator=g) * 2 - 1]

    def latent_std() -> float:
        with torch.no_grad():
            return float(torch.cat([vae.encode_video(v).flatten() for v in videos]).std())

    before = latent_std()
    assert abs(before - 1.0) > 0.01, "the uncalibrated latents should not have unit std already"
    factor = vae.calibrate_scaling_factor(videos)
    assert vae.config.scaling_factor == factor
    assert abs(latent_std() - 1.0) < 1e-3
    assert factor == pytest.approx(vae.config.scaling_factor)
    with pytest.raises(ValueError, match="at least one video"):
        vae.calibrate_scaling_factor([])


def test_init_strength_is_saved_with_the_model(runs, toy):
    preset_strength = json.loads(Path(toy[1]).read_text())["pipeline"].get("init_strength", 1.0)
    saved = {
        name: json.loads((runs[name] / "model" / "pipeline_config.json").read_text())["init_strength"]
        for name in ("default", "warp-start")
    }
    assert saved == {"default": preset_strength, "warp-start": 0.3}


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_init_strength_is_validated(toy, tmp_path, bad):
    with pytest.raises(ValueError, match="--init-strength"):
        config(toy, tmp_path, init_strength=bad)


@pytest.mark.parametrize("options", [{"pixel_weight": -1.0}, {"pixel_weight": 1.0, "stage": "vae"}])
def test_pixel_weight_is_validated(toy, tmp_path, options):
    with pytest.raises(ValueError, match="--pixel-weight"):
        config(toy, tmp_path, **options)
