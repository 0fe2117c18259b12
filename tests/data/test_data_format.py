"""The shard format: round trip, streaming, atomic writes, and clear errors on truncated or corrupt shards."""

import json
import os

import numpy as np
import pytest

from offline_training.data import (
    ARRAY_SCHEMA,
    FORMAT_NAME,
    FORMAT_VERSION,
    DatasetError,
    ShardWriter,
    iter_tar_samples,
    open_dataset,
    shard_done,
)


def fake_sample(seed: int, T: int = 5, H: int = 12, W: int = 16) -> dict:
    rng = np.random.default_rng(seed)
    return dict(
        src_rgb=rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8),
        tgt_rgb=rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8),
        src_depth=rng.uniform(0.5, 3, (T, H, W)).astype(np.float32),
        tgt_depth=rng.uniform(0.5, 3, (T, H, W)).astype(np.float32),
        src_mask=rng.integers(0, 2, (T, H, W), dtype=np.uint8),
        tgt_mask=rng.integers(0, 2, (T, H, W), dtype=np.uint8),
        K_src=np.array([[20.0, 0, 7.5], [0, 20, 5.5], [0, 0, 1]]),
        K_tgt=np.eye(3) * seed,
        T_tgt_src=np.tile(np.eye(4), (T, 1, 1)) + seed,
        caption=f"sample {seed}",
        meta={
            "robot": "panda",
            "seed": seed,
            "split": "train",
            "scene": {"floor": "wood"},
            "robot_mask_src": np.zeros(3),
        },
    )


def write_dataset(path, shards: dict[int, list[int]]) -> None:
    with open(os.path.join(path, "dataset.json"), "w") as f:
        json.dump({"format": FORMAT_NAME, "version": FORMAT_VERSION, "num_shards": max(shards) + 1}, f)
    for shard, seeds in shards.items():
        with ShardWriter(str(path), shard) as writer:
            for seed in seeds:
                writer.add(f"{seed:08d}", fake_sample(seed))


def test_round_trip_and_order(tmp_path):
    write_dataset(tmp_path, {0: [0, 1], 1: [2]})
    ds = open_dataset(str(tmp_path))
    assert len(ds) == 3
    for i, sample in enumerate(ds):
        expected = fake_sample(i)
        for name, (dtype, _) in ARRAY_SCHEMA.items():
            assert sample[name].dtype == np.dtype(dtype)
            np.testing.assert_array_equal(sample[name], expected[name])
        assert sample["caption"] == expected["caption"]
        assert sample["meta"]["seed"] == i and "robot_mask_src" not in sample["meta"]
    assert ds[-1]["caption"] == "sample 2"
    with pytest.raises(IndexError):
        ds[3]


def test_stream_reads_a_tar_front_to_back(tmp_path):
    write_dataset(tmp_path, {0: [4, 5, 6]})
    with open(tmp_path / "shard-000000.tar", "rb") as f:
        captions = [s["caption"] for s in iter_tar_samples(f)]
    assert captions == ["sample 4", "sample 5", "sample 6"]


def test_failed_writer_leaves_no_shard(tmp_path):
    with pytest.raises(RuntimeError):
        with ShardWriter(str(tmp_path), 0) as writer:
            writer.add("00000000", fake_sample(0))
            raise RuntimeError("killed")
    assert os.listdir(tmp_path) == []
    assert not shard_done(str(tmp_path), 0)


def test_truncated_shard_names_the_file(tmp_path):
    write_dataset(tmp_path, {0: [0, 1]})
    tar = tmp_path / "shard-000000.tar"
    assert shard_done(str(tmp_path), 0)
    tar.write_bytes(tar.read_bytes()[: tar.stat().st_size * 2 // 3])
    assert not shard_done(str(tmp_path), 0)
    with pytest.raises(DatasetError, match="shard-000000.tar.*truncated"):
        open_dataset(str(tmp_path))
    with pytest.raises(DatasetError, match="truncated"):
        list(iter_tar_samples(open(tar, "rb"), name=str(tar)))


def test_corrupt_member_names_the_file(tmp_path):
    write_dataset(tmp_path, {0: [0, 1]})
    tar = tmp_path / "shard-000000.tar"
    data = bytearray(tar.read_bytes())
    index = json.loads((tmp_path / "shard-000000.json").read_text())
    offset, size, _ = index["samples"][1]["npz"]
    data[offset + size // 2] ^= 0xFF
    tar.write_bytes(bytes(data))
    ds = open_dataset(str(tmp_path))
    ds[0]  # the untouched sample still reads
    with pytest.raises(DatasetError, match="shard-000000.tar.*00000001.npz.*corrupt"):
        ds[1]


def test_not_a_dataset(tmp_path):
    with pytest.raises(DatasetError, match="dataset.json not found"):
        open_dataset(str(tmp_path))


def test_contact_sheet_grid_shape():
    from offline_training.contact_sheet import HEADER_PX, contact_sheet

    samples = [fake_sample(i, H=30, W=40) for i in range(3)]
    sheet = contact_sheet(samples, tile_height=30, columns=2)
    # header + 2 rows x 2 blocks; each block is 4 tiles of 30x40 plus 2-pixel gutters
    assert sheet.shape == (HEADER_PX + 2 * 32, 2 * (4 * 40 + 2), 3) and sheet.dtype == np.uint8
    body = sheet[HEADER_PX:]
    # the empty fourth slot stays white, a filled slot does not
    assert (body[32:62, 162:322] == 255).all() and not (body[:30, :160] == 255).all()
