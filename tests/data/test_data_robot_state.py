"""The robot state of a sample (docs/DESIGN.md contract 6: joint names and positions, the robot model reference,
T_src_base) and the robot-only masks: written by the shard writer, read back by the reader and checked against the
shard's bytes read with tarfile, zipfile and json alone; samples without them (older datasets) still load."""

import io
import json
import os
import tarfile
import zipfile
import zlib

import numpy as np
import pytest

from offline_training.data import ARRAY_SCHEMA, FORMAT_NAME, ShardWriter, open_dataset

T, H, W = 4, 10, 14
NAMES = ["panda_joint1", "panda_joint2", "panda_finger_joint1"]


def base_sample(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return dict(
        src_rgb=rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8),
        tgt_rgb=rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8),
        src_depth=rng.uniform(0.5, 3, (T, H, W)).astype(np.float32),
        tgt_depth=rng.uniform(0.5, 3, (T, H, W)).astype(np.float32),
        src_mask=rng.integers(0, 2, (T, H, W), dtype=np.uint8),
        tgt_mask=rng.integers(0, 2, (T, H, W), dtype=np.uint8),
        K_src=np.array([[20.0, 0, 6.5], [0, 20, 4.5], [0, 0, 1]]),
        K_tgt=np.array([[21.0, 0, 6.5], [0, 21, 4.5], [0, 0, 1]]),
        T_tgt_src=np.tile(np.eye(4), (T, 1, 1)),
        caption=f"sample {seed}",
        meta={"robot": "panda_bullet", "seed": seed, "split": "test", "scene": {}},
    )


def robot_sample(seed: int) -> dict:
    rng = np.random.default_rng(100 + seed)
    T_src_base = np.eye(4)
    T_src_base[:3, 3] = rng.uniform(-1, 1, 3)
    return base_sample(seed) | dict(
        src_robot_mask=rng.integers(0, 2, (T, H, W), dtype=np.uint8),
        tgt_robot_mask=rng.integers(0, 2, (T, H, W), dtype=np.uint8),
        joint_names=list(NAMES),
        joint_positions=rng.uniform(-2, 2, (T, len(NAMES))),
        robot_model={"library": "panda_bullet", "scale": 1.0, "urdf": "pybullet_data/franka_panda/panda.urdf"},
        T_src_base=T_src_base,
    )


def write(path, samples: list[dict]) -> None:
    with open(os.path.join(path, "dataset.json"), "w") as f:
        json.dump({"format": FORMAT_NAME, "version": 1, "num_shards": 1}, f)
    with ShardWriter(str(path), 0) as writer:
        for i, sample in enumerate(samples):
            writer.add(f"{i:08d}", sample)


def members(path) -> dict[str, bytes]:
    with tarfile.open(os.path.join(path, "shard-000000.tar")) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def test_robot_state_round_trips_and_is_what_the_shard_holds(tmp_path):
    written = [robot_sample(0), robot_sample(1)]
    write(tmp_path, written)
    stored = members(tmp_path)
    for i, (expected, sample) in enumerate(zip(written, open_dataset(str(tmp_path)))):
        # the shard's own bytes, read without the reader
        with zipfile.ZipFile(io.BytesIO(stored[f"{i:08d}.npz"])) as zf:
            raw = {name[:-4]: np.load(io.BytesIO(zf.read(name))) for name in zf.namelist()}
        text = json.loads(stored[f"{i:08d}.json"])
        assert text["joint_names"] == NAMES and text["robot_model"] == expected["robot_model"]
        assert raw["joint_positions"].dtype == np.float64 and raw["T_src_base"].shape == (4, 4)
        np.testing.assert_array_equal(raw["joint_positions"], expected["joint_positions"])
        np.testing.assert_array_equal(raw["tgt_robot_mask"], expected["tgt_robot_mask"])
        # the reader returns the same
        assert sample["joint_names"] == NAMES and sample["robot_model"] == expected["robot_model"]
        for name in ("joint_positions", "T_src_base", "src_robot_mask", "tgt_robot_mask"):
            np.testing.assert_array_equal(sample[name], expected[name])
            assert sample[name].dtype == raw[name].dtype


def test_samples_without_the_robot_state_still_load(tmp_path):
    """An older shard, built here by hand as the version-1 writer laid it out (the base arrays, caption, meta)."""
    sample = base_sample(3)
    npz = io.BytesIO()
    np.savez(npz, **{name: sample[name] for name in ARRAY_SCHEMA})
    text = json.dumps({"caption": sample["caption"], "meta": sample["meta"]}).encode()
    with open(os.path.join(tmp_path, "shard-000000.tar"), "wb") as f:
        with tarfile.open(fileobj=f, mode="w") as tar:
            entries = []
            for ext, payload in (("npz", npz.getvalue()), ("json", text)):
                info = tarfile.TarInfo(f"00000000.{ext}")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
                entries.append((ext, payload))
    # the index: each member's data offset found by scanning the tar
    with tarfile.open(os.path.join(tmp_path, "shard-000000.tar")) as tar:
        offsets = {m.name.split(".")[1]: m.offset_data for m in tar.getmembers()}
    entry = {"key": "00000000"} | {ext: [offsets[ext], len(p), zlib.crc32(p)] for ext, p in entries}
    size = os.path.getsize(os.path.join(tmp_path, "shard-000000.tar"))
    with open(os.path.join(tmp_path, "shard-000000.json"), "w") as f:
        json.dump({"shard": 0, "tar": "shard-000000.tar", "tar_bytes": size, "samples": [entry], "stats": {}}, f)
    with open(os.path.join(tmp_path, "dataset.json"), "w") as f:
        json.dump({"format": FORMAT_NAME, "version": 1, "num_shards": 1}, f)

    (loaded,) = open_dataset(str(tmp_path))
    np.testing.assert_array_equal(loaded["src_rgb"], sample["src_rgb"])
    assert not {"joint_names", "joint_positions", "robot_model", "T_src_base", "tgt_robot_mask"} & set(loaded)


@pytest.mark.parametrize(
    "change, complaint",
    [
        (lambda s: s.pop("T_src_base"), "whole or not at all"),
        (lambda s: s.update(joint_positions=np.zeros((T, 2))), "joint_positions must be"),
        (lambda s: s.update(joint_positions=np.zeros((T + 1, 3))), "joint_positions must be"),
        (lambda s: s.update(robot_model="panda"), "robot_model a dict"),
    ],
)
def test_inconsistent_robot_state_is_refused_when_written(tmp_path, change, complaint):
    sample = robot_sample(0)
    change(sample)
    with pytest.raises(ValueError, match=complaint):
        write(tmp_path, [sample])
    assert not os.path.exists(os.path.join(tmp_path, "shard-000000.json"))
