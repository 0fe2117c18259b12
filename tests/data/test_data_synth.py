"""`embody4d synth`: determinism across fan-out, resume, held-out morphologies, plausibility check, CLI options."""

import json
import os

import numpy as np
import pytest

from embody4d_ros.cli import build_parser
from offline_training.data import ARRAY_SCHEMA, open_dataset
from offline_training.synth import PlausibilityConfig, SynthConfig, config_from_args, plausibility_failure, synthesize

TINY = dict(num_frames=5, height=48, width=64, samples_per_shard=2, show_progress=False)


def synth(out, **kwargs):
    show = kwargs.pop("show_progress", False)
    return synthesize(SynthConfig(out=str(out), **kwargs), show_progress=show)


def assert_same(a, b):
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        for name in ARRAY_SCHEMA:
            np.testing.assert_array_equal(x[name], y[name], err_msg=name)
        assert x["caption"] == y["caption"] and x["meta"] == y["meta"]


@pytest.mark.slow
def test_same_seed_same_samples_across_fan_out_and_resume(tmp_path):
    one = synth(tmp_path / "one", num_samples=3, seed=7, num_workers=2, **TINY)  # spawned worker processes
    assert one["shards_written"] == 2 and one["samples_written"] == 3
    # the same dataset made by two "machines" writing half the shards each
    for i in range(2):
        synth(tmp_path / "two", num_samples=3, seed=7, shard_index=i, num_shards=2, **TINY)
    assert_same(open_dataset(str(tmp_path / "one")), open_dataset(str(tmp_path / "two")))
    # resume: finished shards are skipped; a lost shard is regenerated identically
    again = synth(tmp_path / "one", num_samples=3, seed=7, **TINY)
    assert again["shards_skipped"] == 2 and again["shards_written"] == 0
    os.remove(tmp_path / "two" / "shard-000001.json")
    redo = synth(tmp_path / "two", num_samples=3, seed=7, **TINY)
    assert redo["shards_written"] == 1
    assert_same(open_dataset(str(tmp_path / "one")), open_dataset(str(tmp_path / "two")))
    # another seed gives other samples
    other = synth(tmp_path / "other", num_samples=1, seed=8, **TINY)
    assert other["samples_written"] == 1
    assert not np.array_equal(
        open_dataset(str(tmp_path / "other"))[0]["src_rgb"], open_dataset(str(tmp_path / "one"))[0]["src_rgb"]
    )


def test_changed_settings_refuse_to_mix(tmp_path):
    from offline_training.data import write_json_atomic
    from offline_training.synth import manifest, split_robots

    config = SynthConfig(out=str(tmp_path), num_samples=2, seed=1)
    info = manifest(config, split_robots(config))
    write_json_atomic(str(tmp_path / "dataset.json"), info | {"seed": 2})
    with pytest.raises(ValueError, match="seed"):
        synth(tmp_path, num_samples=2, seed=1)


def test_test_split_holds_only_held_out_morphologies(tmp_path):
    from offline_training.sim import MORPHOLOGY, available_robots

    train, test = set(available_robots("train")), set(available_robots("test"))
    train_morphologies = {MORPHOLOGY[r] for r in train}
    assert len({MORPHOLOGY[r] for r in test}) >= 3 and not train & test
    synth(tmp_path, split="test", num_samples=len(test), seed=3, **TINY)
    ds = open_dataset(str(tmp_path))
    robots = {s["meta"]["robot"] for s in ds}
    assert len(robots) == len(test)  # round-robin: one of each
    assert robots <= test and not {MORPHOLOGY[r] for r in robots} & train_morphologies
    assert all(s["meta"]["split"] == "test" for s in ds)
    assert json.loads((tmp_path / "dataset.json").read_text())["robots"] == sorted(test)


def test_round_robin_covers_every_morphology_once_per_cycle():
    from offline_training.sim import MORPHOLOGY, available_robots
    from offline_training.synth import robot_for_index

    robots = available_robots("train")
    morphologies = {MORPHOLOGY[r] for r in robots}
    for cycle in range(2):
        picks = [robot_for_index(robots, 4, cycle * len(morphologies) + i) for i in range(len(morphologies))]
        assert {MORPHOLOGY[r] for r in picks} == morphologies
    assert picks == [robot_for_index(robots, 4, len(morphologies) + i) for i in range(len(morphologies))]


def plausible_sample(T=3, H=40, W=60, angle_deg=15.0):
    rgb = np.random.default_rng(0).integers(0, 256, (T, H, W, 3), dtype=np.uint8)
    mask = np.zeros((T, H, W), np.uint8)
    mask[:, 10:30, 20:40] = 1
    a = np.deg2rad(angle_deg)
    T_tgt_src = np.eye(4)
    T_tgt_src[:3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
    depth = np.ones((T, H, W), np.float32)
    return dict(
        src_rgb=rgb,
        tgt_rgb=rgb.copy(),
        src_depth=depth,
        tgt_depth=depth.copy(),
        src_mask=mask,
        tgt_mask=mask.copy(),
        T_tgt_src=np.repeat(T_tgt_src[None], T, 0),
        meta={},
    )


def test_plausibility_reasons():
    config = PlausibilityConfig()
    assert plausibility_failure(plausible_sample(), config) is None
    s = plausible_sample()
    s["tgt_mask"][1] = 0
    assert plausibility_failure(s, config) == "robot_not_visible"
    s = plausible_sample()
    s["src_mask"][2, :, -1] = 1
    assert plausibility_failure(s, config) == "robot_clipped"
    s = plausible_sample()
    s["tgt_depth"][:, :20] = 0
    assert plausibility_failure(s, config) == "invalid_depth"
    s = plausible_sample()
    s["src_rgb"][:] = 128
    assert plausibility_failure(s, config) == "low_texture"
    assert plausibility_failure(plausible_sample(angle_deg=1.0), config) == "parallax_out_of_range"
    assert plausibility_failure(plausible_sample(angle_deg=60.0), config) == "parallax_out_of_range"
    # robot-only masks from the renderer take precedence over robot-and-object masks
    s = plausible_sample()
    s["src_robot_mask"] = np.zeros_like(s["src_mask"])
    assert plausibility_failure(s, config) == "robot_not_visible"


def test_cli_options_map_onto_the_config():
    args = build_parser("synth").parse_args(
        [
            "synth",
            "--out",
            "/tmp/x",
            "--num-samples",
            "5",
            "--split",
            "test",
            "--seed",
            "3",
            "--num-workers",
            "2",
            "--shard-index",
            "1",
            "--num-shards",
            "4",
            "--plausibility.view_angle_deg",
            "2",
            "30",
        ]
    )
    config = config_from_args(SynthConfig, args)
    assert (config.num_samples, config.split, config.seed, config.num_workers) == (5, "test", 3, 2)
    assert (config.shard_index, config.num_shards) == (1, 4)
    assert config.plausibility.view_angle_deg == (2.0, 30.0)
    with pytest.raises(ValueError, match="4k\\+1"):
        SynthConfig(out="x", num_frames=10)
    with pytest.raises(ValueError, match="shard-index"):
        SynthConfig(out="x", shard_index=4, num_shards=4)


def test_stored_sample_is_geometrically_self_consistent(tmp_path):
    """What the reader returns (not just what the renderer made) warps from source into target at >= 30 dB."""
    from test_sim_clip import H, W, warp_psnr

    synth(tmp_path, num_samples=1, seed=5, num_frames=1, height=H, width=W, robots="panda")
    sample = open_dataset(str(tmp_path))[0]
    assert sample["meta"]["robot"] == "panda" and sample["src_rgb"].shape == (1, H, W, 3)
    assert warp_psnr(sample, 0) >= 30.0


def test_resume_removes_a_killed_runs_leftovers(tmp_path):
    (tmp_path / "shard-000000.tar.tmp12345").write_bytes(b"half a shard")
    (tmp_path / "shard-000001.tar.tmp999").write_bytes(b"another slot's shard in progress")
    summary = synth(
        tmp_path, num_samples=1, seed=0, num_frames=1, height=48, width=64, robots="panda", num_shards=2, shard_index=0
    )
    assert summary["shards_written"] == 1
    assert sorted(os.listdir(tmp_path)) == [
        "dataset.json",
        "shard-000000.json",
        "shard-000000.tar",
        "shard-000001.tar.tmp999",
    ]


def test_embody4d_synth_command_end_to_end(tmp_path, capsys):
    from embody4d_ros.cli import main

    assert (
        main(
            [
                "synth",
                "--out",
                str(tmp_path),
                "--num-samples",
                "1",
                "--num-frames",
                "1",
                "--height",
                "48",
                "--width",
                "64",
                "--robots",
                "panda",
                "--seed",
                "2",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["samples_written"] == 1
    sample = open_dataset(str(tmp_path))[0]
    assert sample["src_rgb"].shape == (1, 48, 64, 3) and sample["meta"]["dataset_seed"] == 2
