"""The on-disk dataset: sharded tar files of per-sample ``.npz`` + ``.json`` members, with a JSON index per shard.

The layout is documented in FORMAT.md beside this file. In short::

    DIR/dataset.json                  what the dataset is: format name/version, schema, split, seed, sizes, configs
    DIR/shard-000000.tar              uncompressed tar: 00000000.npz, 00000000.json, 00000001.npz, ... in order
    DIR/shard-000000.json             the shard's index, written last: members with offsets, sizes, CRC-32s; stats

A shard counts as finished once its index exists, so a killed writer leaves at most a ``*.tmp*`` file and the shard is
redone on resume. The tar alone streams (``iter_tar_samples`` reads a file object front to back, e.g. from a pipe);
the index gives random access and integrity checks without scanning.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO

import numpy as np

FORMAT_NAME = "embody4d-two-view"
FORMAT_VERSION = 1
# the sample schema (docs/DESIGN.md contract 6): array name -> (dtype, shape with T, H, W symbolic)
ARRAY_SCHEMA: dict[str, tuple[str, str]] = {
    "src_rgb": ("uint8", "T,H,W,3"),
    "tgt_rgb": ("uint8", "T,H,W,3"),
    "src_depth": ("float32", "T,H,W"),
    "tgt_depth": ("float32", "T,H,W"),
    "src_mask": ("uint8", "T,H,W"),
    "tgt_mask": ("uint8", "T,H,W"),
    "K_src": ("float64", "3,3"),
    "K_tgt": ("float64", "3,3"),
    "T_tgt_src": ("float64", "T,4,4"),
}
# arrays a sample may carry in addition (absent from samples that do not): name -> (dtype, shape)
OPTIONAL_ARRAYS: dict[str, tuple[str, str]] = {
    "src_depth_sensor": ("float32", "T,H,W"),  # the source depth as a depth camera would give it (meta depth_model)
    "src_robot_mask": ("uint8", "T,H,W"),  # 1 on the robot alone (src_mask also covers objects)
    "tgt_robot_mask": ("uint8", "T,H,W"),
    "joint_positions": ("float64", "T,J"),  # the robot state (ROBOT_FIELDS)
    "T_src_base": ("float64", "4,4"),
}
TEXT_FIELDS = ("caption", "meta")
# the robot state for the robot-aware view: all four or none. joint_names (J,) str; joint_positions (T, J) radians or
# metres; robot_model a JSON object naming the robot model (offline_training.sim.robot_reference); T_src_base (4, 4)
# maps points of the robot's base frame (its description's root) into the source optical frame
ROBOT_FIELDS = ("joint_names", "joint_positions", "robot_model", "T_src_base")
OPTIONAL_TEXT_FIELDS = ("joint_names", "robot_model")


class DatasetError(RuntimeError):
    """A dataset directory or shard that cannot be read; the message names the file and what to do."""


def shard_name(index: int) -> str:
    return f"shard-{index:06d}"


# ------------------------------------------------------------------------------------------------------- encoding


def encode_sample(sample: dict[str, Any], compresslevel: int = 1) -> tuple[bytes, bytes]:
    """A contract-6 sample as (npz bytes, json bytes). Level-1 deflate: lossless, ~3x faster than numpy's default.

    Array values inside ``meta`` are dropped (they are not JSON); everything else in meta must be JSON-serialisable.
    """
    missing = [k for k in (*ARRAY_SCHEMA, *TEXT_FIELDS) if k not in sample]
    if missing:
        raise KeyError(f"sample lacks {missing}; the schema is docs/DESIGN.md contract 6")
    check_robot_fields(sample)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=compresslevel) as zf:
        for name, (dtype, _) in (ARRAY_SCHEMA | {k: v for k, v in OPTIONAL_ARRAYS.items() if k in sample}).items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(sample[name], dtype=dtype), allow_pickle=False)
    meta = {k: v for k, v in sample["meta"].items() if not isinstance(v, np.ndarray)}
    fields = {"caption": sample["caption"], "meta": meta} | {k: sample[k] for k in OPTIONAL_TEXT_FIELDS if k in sample}
    text = json.dumps(fields, sort_keys=True).encode()
    return buf.getvalue(), text


def check_robot_fields(sample: dict[str, Any]) -> None:
    """Raise ValueError unless ``sample`` has all of :data:`ROBOT_FIELDS` consistently, or none of them."""
    present = [k for k in ROBOT_FIELDS if k in sample]
    if not present:
        return
    if len(present) != len(ROBOT_FIELDS):
        raise ValueError(
            f"sample has {present} but not {sorted(set(ROBOT_FIELDS) - set(present))}: the robot state "
            "(docs/DESIGN.md contract 6) comes whole or not at all"
        )
    names, positions = sample["joint_names"], np.asarray(sample["joint_positions"])
    frames = len(sample["src_rgb"])
    if not all(isinstance(n, str) for n in names) or positions.shape != (frames, len(names)):
        raise ValueError(
            f"joint_positions must be (T={frames}, J={len(names)}) for joint_names of J strings, got {positions.shape}"
        )
    if np.asarray(sample["T_src_base"]).shape != (4, 4) or not isinstance(sample["robot_model"], dict):
        raise ValueError("T_src_base must be (4, 4) and robot_model a dict (offline_training.sim.robot_reference)")


def decode_sample(npz: bytes, text: bytes, where: str) -> dict[str, Any]:
    """Inverse of :func:`encode_sample`; ``where`` names the file in error messages."""
    try:
        with np.load(io.BytesIO(npz), allow_pickle=False) as arrays:
            sample: dict[str, Any] = {name: arrays[name] for name in ARRAY_SCHEMA}
            sample.update({name: arrays[name] for name in OPTIONAL_ARRAYS if name in arrays.files})
        sample.update(json.loads(text))
    except (ValueError, KeyError, OSError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise DatasetError(f"{where}: cannot decode sample ({exc}); the shard is corrupt, regenerate it") from exc
    return sample


# -------------------------------------------------------------------------------------------------------- writing


class ShardWriter:
    """Writes one shard atomically: members go to a temporary tar, which is renamed, then the index is written.

    Usage::

        with ShardWriter(directory, shard_index) as writer:
            writer.add(key, sample)
            writer.stats = {...}
    Nothing is left behind under the final names if the block raises or the process dies.
    """

    def __init__(self, directory: str, index: int) -> None:
        self.directory, self.index = directory, index
        base = os.path.join(directory, shard_name(index))
        self.tar_path, self.index_path = base + ".tar", base + ".json"
        self._tmp = f"{self.tar_path}.tmp{os.getpid()}"
        self._file: BinaryIO | None = None
        self._tar: tarfile.TarFile | None = None
        self.members: list[dict[str, Any]] = []
        self.stats: dict[str, Any] = {}

    def __enter__(self) -> "ShardWriter":
        os.makedirs(self.directory, exist_ok=True)
        self._file = open(self._tmp, "wb")
        self._tar = tarfile.open(fileobj=self._file, mode="w", format=tarfile.PAX_FORMAT)
        return self

    def add(self, key: str, sample: dict[str, Any]) -> None:
        """Append one sample under ``key`` (8 digits: its global index)."""
        assert self._tar is not None, "the shard writer is used inside its `with` block"
        npz, text = encode_sample(sample)
        entry: dict[str, Any] = {"key": key}
        for ext, payload in (("npz", npz), ("json", text)):
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size = len(payload)
            self._tar.addfile(info, io.BytesIO(payload))
            # the data of the member just written ends at the file position rounded down to the last block
            offset = self._tar.offset - _padded(len(payload))
            entry[ext] = [offset, len(payload), zlib.crc32(payload)]
        self.members.append(entry)

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self._tar is not None and self._file is not None
        self._tar.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        if exc_type is not None:
            os.unlink(self._tmp)
            return
        size = os.path.getsize(self._tmp)
        os.replace(self._tmp, self.tar_path)
        index = {
            "shard": self.index,
            "tar": os.path.basename(self.tar_path),
            "tar_bytes": size,
            "samples": self.members,
            "stats": self.stats,
        }
        write_json_atomic(self.index_path, index)


def _padded(size: int) -> int:
    return (size + tarfile.BLOCKSIZE - 1) // tarfile.BLOCKSIZE * tarfile.BLOCKSIZE


def write_json_atomic(path: str, obj: Any) -> None:
    """Write JSON to ``path`` through a temporary file and a rename, so readers never see half a file."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def shard_done(directory: str, index: int) -> bool:
    """True when shard ``index`` was finished (its index exists and the tar has the recorded size)."""
    base = os.path.join(directory, shard_name(index))
    try:
        with open(base + ".json") as f:
            expected = json.load(f)["tar_bytes"]
        return os.path.getsize(base + ".tar") == expected
    except (OSError, ValueError, KeyError):
        return False


# -------------------------------------------------------------------------------------------------------- reading


class TwoViewDataset(Sequence):
    """The samples of a dataset directory, in global-index order, read lazily (``len()``, indexing, iteration).

    Each item is a contract-6 dict. Shards are checked when opened (their size against the index) and every member
    against its CRC-32 when read, so truncated or corrupt shards raise :class:`DatasetError` naming the file.
    """

    def __init__(self, path: str, verify: bool = True) -> None:
        self.path = path
        manifest = os.path.join(path, "dataset.json")
        try:
            with open(manifest) as f:
                self.info = json.load(f)
        except FileNotFoundError:
            raise DatasetError(
                f"{manifest} not found: {path} is not a dataset directory (write one with `embody4d synth --out DIR`)"
            ) from None
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{manifest} is not valid JSON ({exc})") from exc
        if self.info.get("format") != FORMAT_NAME or self.info.get("version", 0) > FORMAT_VERSION:
            raise DatasetError(
                f"{manifest}: format {self.info.get('format')!r} v{self.info.get('version')} is not "
                f"{FORMAT_NAME!r} <= v{FORMAT_VERSION}; update embody4d to read it"
            )
        self._entries: list[tuple[str, dict]] = []
        self.shard_stats: list[dict] = []
        for shard in range(int(self.info["num_shards"])):
            base = os.path.join(path, shard_name(shard))
            if not os.path.exists(base + ".json"):
                continue  # not written (yet): a partial dataset is readable
            try:
                with open(base + ".json") as f:
                    index = json.load(f)
            except (OSError, json.JSONDecodeError) as exc:
                raise DatasetError(f"{base}.json: unreadable shard index ({exc}); delete it and rerun synth") from exc
            tar_path = base + ".tar"
            size = os.path.getsize(tar_path) if os.path.exists(tar_path) else -1
            if size != index["tar_bytes"]:
                raise DatasetError(
                    f"{tar_path}: {'missing' if size < 0 else f'{size} bytes'}, the index says "
                    f"{index['tar_bytes']}: the shard is truncated or was replaced; delete "
                    f"{base}.json and rerun synth with the same arguments to regenerate it"
                )
            self.shard_stats.append(index.get("stats", {}))
            self._entries += [(tar_path, member) for member in index["samples"]]
        self.verify = verify

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, i: int) -> dict[str, Any]:  # type: ignore[override]
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} out of range for {len(self)} samples")
        tar_path, member = self._entries[i]
        payload = {}
        with open(tar_path, "rb") as f:
            for ext in ("npz", "json"):
                offset, size, crc = member[ext]
                f.seek(offset)
                data = f.read(size)
                if len(data) != size or (self.verify and zlib.crc32(data) != crc):
                    raise DatasetError(
                        f"{tar_path}: member {member['key']}.{ext} is corrupt (size or CRC-32 "
                        "mismatch); delete the shard's .json and rerun synth to regenerate it"
                    )
                payload[ext] = data
        return decode_sample(payload["npz"], payload["json"], f"{tar_path}:{member['key']}")


def open_dataset(path: str, verify: bool = True) -> TwoViewDataset:
    """Open a dataset directory written by ``embody4d synth`` as a sequence of contract-6 samples."""
    return TwoViewDataset(path, verify=verify)


def iter_tar_samples(fileobj: BinaryIO, name: str = "<stream>") -> Iterator[dict[str, Any]]:
    """Stream the samples of one shard tar from a file object read front to back (a pipe or socket will do)."""
    pending: dict[str, dict[str, bytes]] = {}
    try:
        with tarfile.open(fileobj=fileobj, mode="r|") as tar:
            for info in tar:
                key, _, ext = info.name.partition(".")
                member = tar.extractfile(info)
                if member is None:  # not a regular file: shards hold none, so nothing to stream
                    continue
                data = member.read()
                pending.setdefault(key, {})[ext] = data
                if len(pending[key]) == 2:
                    parts = pending.pop(key)
                    yield decode_sample(parts["npz"], parts["json"], f"{name}:{key}")
    except tarfile.TarError as exc:
        raise DatasetError(f"{name}: broken tar stream ({exc}); the shard is truncated or corrupt") from exc
    if pending:
        raise DatasetError(f"{name}: sample(s) {sorted(pending)} incomplete; the shard is truncated")
