"""Training warps sensor-like source depth: the batch's condition comes from the depth model drawn for the item
(offline_training/training/batches.py), with the sensor model's statistics; `--depth-mix clean` gives clean depth."""

import argparse
import math

import numpy as np
import pytest
import torch

from model.conditioning import conditioning_frames
from model.depth_sensor import MonoEstimate
from model.geometry import WarpSettings
from model.virtual_view import prepare_virtual_view
from offline_training import train as train_module
from offline_training.training.batches import StageClips, parse_depth_mix, source_depth, video_tensor

H, W = 96, 128
K = np.array([[120.0, 0.0, 63.5], [0.0, 120.0, 47.5], [0.0, 0.0, 1.0]])
PLANE_M = 2.0


def stereo_inverse_sigma(K: np.ndarray, width: int) -> float:
    """The D435's RMS inverse-depth error from Intel's formula: 0.08 px of disparity at the native 848-wide focal
    length of a camera with this field of view, 50 mm baseline; plus the 1/32 px quantisation (uniform)."""
    focal_baseline = K[0, 0] * 848 / width * 0.050
    return math.hypot(0.08, (1 / 32) / math.sqrt(12)) / focal_baseline


def sample(depth: np.ndarray | None = None) -> dict:
    """One 1-frame two-view sample: a textured fronto-parallel wall at 2 m, target camera 5 cm to the right."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (1, H, W, 3), dtype=np.uint8)
    depth = np.full((1, H, W), PLANE_M, np.float32) if depth is None else depth
    T = np.eye(4)[None].copy()
    T[0, 0, 3] = -0.05
    mask = np.zeros((1, H, W), np.uint8)
    mask[:, 30:70, 40:90] = 1
    return {
        "src_rgb": rgb,
        "tgt_rgb": rgb.copy(),
        "src_depth": depth,
        "tgt_depth": depth.copy(),
        "src_mask": mask,
        "tgt_mask": mask.copy(),
        "K_src": K,
        "K_tgt": K,
        "T_tgt_src": T,
        "caption": "a wall",
        "meta": {},
    }


def condition(sample: dict, depth: np.ndarray, settings: WarpSettings) -> torch.Tensor:
    """The network's warped condition computed directly through the node's path (holes black)."""
    view = prepare_virtual_view(
        sample["src_rgb"], depth, K, sample["T_tgt_src"], out_hw=(H, W), K_dst=K, settings=settings
    )
    return video_tensor(conditioning_frames(view.warp.image, view.warp.mask, view.warp.depth, "none"))


def test_clean_mix_warps_the_clean_depth():
    data = [sample()]
    clips = StageClips(data, "stage1", 1, seed=0, height=H, width=W, depth_mix="clean")
    assert clips.source_depth(0, "clean") is data[0]["src_depth"]
    for epoch in range(3):
        assert clips.depth_model(0, epoch) == "clean"
        torch.testing.assert_close(
            clips[(0, epoch)]["warped"], condition(data[0], data[0]["src_depth"], WarpSettings())
        )


def test_stereo_source_depth_has_the_sensor_statistics_and_feeds_the_condition():
    data = [sample()]
    clips = StageClips(data, "stage1", 1, seed=0, height=H, width=W, depth_mix="stereo")
    depth = clips.source_depth(0, "stereo")
    inner = depth[0, 4:-4, 4:-4]  # away from the border the 1 px misregistration leaves empty
    valid = inner > 0
    residual = 1.0 / inner[valid] - 1.0 / PLANE_M
    assert abs(residual.mean()) < 3e-4  # unbiased in inverse depth
    assert residual.std() == pytest.approx(stereo_inverse_sigma(K, W), rel=0.1)
    assert 0.002 < 1.0 - valid.mean() < 0.05  # the 1 % dropout blobs, no edges on a wall
    # the same sensor depth every epoch (seeded by run seed and sample), another one for another run seed
    np.testing.assert_array_equal(
        depth, StageClips(data, "stage1", 1, 0, H, W, depth_mix="stereo").source_depth(0, "stereo")
    )
    assert not np.array_equal(
        depth, StageClips(data, "stage1", 1, 1, H, W, depth_mix="stereo").source_depth(0, "stereo")
    )
    # the condition is the noise-aware warp of that depth, not of the clean depth
    noisy = condition(data[0], depth, WarpSettings(depth_noise_inv_m=stereo_inverse_sigma(K, W)))
    item = clips[(0, 0)]["warped"]
    torch.testing.assert_close(item, noisy, atol=0, rtol=0)
    assert not torch.equal(item, condition(data[0], data[0]["src_depth"], WarpSettings()))


def test_mix_draws_each_model_in_its_share_and_deterministically():
    data = [sample(), sample(), sample()]
    clips = StageClips(data, "stage1", 1, seed=4, height=H, width=W, depth_mix="clean:2, stereo:1,mono")
    draws = [clips.depth_model(i, epoch) for i in range(3) for epoch in range(400)]
    shares = {name: draws.count(name) / len(draws) for name in ("clean", "stereo", "mono")}
    assert shares == pytest.approx({"clean": 0.5, "stereo": 0.25, "mono": 0.25}, abs=0.04)
    assert draws == [clips.depth_model(i, epoch) for i in range(3) for epoch in range(400)]
    # the depth draw has its own generator: an item drawn with clean depth is the item of a clean-only run (same
    # clip window, same pseudo-4D draws)
    mixed = StageClips(data, "stage1", 1, seed=4, height=H, width=W, pseudo4d_fraction=0.5, depth_mix="clean,stereo")
    clean = StageClips(data, "stage1", 1, seed=4, height=H, width=W, pseudo4d_fraction=0.5)
    keys = [(i, epoch) for i in range(3) for epoch in range(6) if mixed.depth_model(i, epoch) == "clean"]
    assert len(keys) >= 4
    for key in keys:
        torch.testing.assert_close(mixed[key]["warped"], clean[key]["warped"], atol=0, rtol=0)


def test_mono_is_aligned_to_the_robot_pixels_when_asked():
    # a wall at 2 m with the robot's (masked) pixels at 1.2 m, stored with a mono estimate 15 % off in scale
    depth = np.full((1, H, W), PLANE_M, np.float32)
    depth[:, 30:70, 40:90] = 1.2
    estimate = MonoEstimate().corrupt(depth[0], K, np.random.default_rng(0), affine=(1.15, 0.0))[None]
    data = {**sample(depth), "meta": {"depth_model": "mono"}, "src_depth_sensor": estimate}
    error = lambda d: float(np.median(np.abs(d / depth - 1)))  # noqa: E731
    assert error(source_depth(data, "mono", seed=0)) > 0.1
    assert error(source_depth(data, "mono", seed=0, align="robot")) < 0.03
    # other depth models are never aligned
    np.testing.assert_array_equal(source_depth(data, "stereo", 7, align="robot"), source_depth(data, "stereo", 7))
    # stored sensor-like depth is cut to the clip
    stored = {**data, "meta": {"depth_model": "stereo"}, "src_depth_sensor": np.full((3, H, W), 1.5, np.float32)}
    assert np.all(source_depth(stored, "stereo", seed=0) == 1.5) and source_depth(stored, "stereo", 0).shape[0] == 1


@pytest.mark.parametrize(
    "text, message", [("lidar", "not one of"), ("clean:x", "must be a number"), ("mono:0", "no depth")]
)
def test_bad_depth_mix_is_named(text, message):
    with pytest.raises(ValueError, match=message):
        parse_depth_mix(text)


def test_train_option_defaults_to_a_mix_and_reaches_the_batches(toy, tmp_path, monkeypatch):
    parser = argparse.ArgumentParser()
    train_module.add_arguments(parser)
    required = ["--stage", "stage1", "--data", "D", "--out", "O"]
    config = train_module.config_from_args(train_module.TrainConfig, parser.parse_args(required))
    assert parse_depth_mix(config.depth_mix) == pytest.approx({"clean": 1 / 3, "stereo": 1 / 3, "mono": 1 / 3})
    assert config.depth_align == "robot"
    args = parser.parse_args([*required, "--depth-mix", "clean", "--depth-align", "none"])
    assert train_module.config_from_args(train_module.TrainConfig, args).depth_mix == "clean"
    with pytest.raises(ValueError, match="lidar"):
        train_module.TrainConfig(stage="stage1", data="D", out="O", depth_mix="clean,lidar")

    seen = {}

    class Stop(Exception):
        pass

    def record(*args, **kwargs):
        seen["clips"] = StageClips(*args, **kwargs)
        raise Stop

    monkeypatch.setattr(train_module, "StageClips", record)
    data, preset = toy
    config = train_module.TrainConfig(
        stage="stage1", data=data, out=str(tmp_path), preset=preset, depth_mix="stereo:3,mono:1", progress=False
    )
    with pytest.raises(Stop):
        train_module.train(config)
    assert seen["clips"].depth_mix == pytest.approx({"stereo": 0.75, "mono": 0.25})
    assert seen["clips"].depth_align == "robot"
