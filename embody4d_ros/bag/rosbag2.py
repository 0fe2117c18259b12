"""rosbag2 directories (metadata.yaml versions 1-9, sqlite3 or MCAP, split, zstd file or message compression).

`BagReader` yields every message the storage files hold, in storage order, whatever metadata.yaml says about
topics and QoS: the storage is the truth. (rosbags' directory reader pairs each storage topic with a metadata.yaml
topic by name, type, serialisation format and offered QoS, and silently skips the messages of storage topics left
without a partner, e.g. when a tool or a person edited the QoS in metadata.yaml.)
`BagWriter` writes a copy of such a bag plus new topics, keeping the input's metadata version, compression, split
files, custom_data, ros_distro and per-storage records, and refuses to finish unless every topic holds as many
messages as the input storage plus what was added.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, Iterator

import yaml
import zstandard
from rosbags.interfaces import Qos
from rosbags.rosbag2.metadata import dump_qos_v8, dump_qos_v9
from rosbags.typesys import Stores, get_typestore

from embody4d_ros.bag.storage import (
    READERS,
    WRITERS,
    BagError,
    Definition,
    StorageReader,
    StorageWriter,
    StoredMessage,
    Topic,
)

SUPPORTED_VERSIONS = range(1, 10)
COMPRESSION_MODES = {"": None, "none": None, "file": "file", "message": "message"}


def typestore() -> Any:
    """Standard message types for decoding what the virtual camera reads (Image and CameraInfo never changed)."""
    return get_typestore(Stores.ROS2_HUMBLE)


def ros2_type_name(name: str) -> str:
    """`pkg/msg/Type` for Dashing's `pkg/Type` (and any later name, unchanged)."""
    parts = name.split("/")
    return f"{parts[0]}/msg/{parts[1]}" if len(parts) == 2 else name


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def load_metadata(path: Path) -> dict[str, Any]:
    """The `rosbag2_bagfile_information` of a bag directory, checked enough to read the bag; BagError otherwise."""
    if not path.is_dir():
        raise BagError(f"{path}: not a rosbag2 directory; pass the directory that holds metadata.yaml")
    metadata_path = path / "metadata.yaml"
    if not metadata_path.is_file():
        raise BagError(f"{path}: not a rosbag2 directory (no metadata.yaml); pass the bag directory, not a file in it")
    try:
        document = yaml.safe_load(metadata_path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise BagError(
            f"{metadata_path}: not a text file; restore the bag's metadata.yaml "
            "(`ros2 bag reindex` rebuilds it from the storage files)"
        ) from None
    except OSError as exc:
        raise BagError(f"{metadata_path}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise BagError(
            f"{metadata_path}: invalid YAML ({_one_line(exc)}); fix it or rebuild it with `ros2 bag reindex`"
        ) from None
    info = document.get("rosbag2_bagfile_information") if isinstance(document, dict) else None
    if not isinstance(info, dict):
        raise BagError(
            f"{metadata_path}: not rosbag2 metadata (expected a mapping with the key "
            f"rosbag2_bagfile_information, got {type(document).__name__}); "
            "rebuild it with `ros2 bag reindex`"
        )
    for key, kind in (("version", int), ("storage_identifier", str), ("relative_file_paths", list)):
        if not isinstance(info.get(key), kind):
            raise BagError(f"{metadata_path}: missing or invalid {key!r}; rebuild it with `ros2 bag reindex`")
    if info["version"] not in SUPPORTED_VERSIONS:
        raise BagError(
            f"{metadata_path}: metadata version {info['version']} is not supported (versions "
            f"{SUPPORTED_VERSIONS.start}-{SUPPORTED_VERSIONS.stop - 1}, Dashing to Jazzy)"
        )
    if info["storage_identifier"] not in ("sqlite3", "mcap"):
        raise BagError(f"{metadata_path}: storage {info['storage_identifier']!r} is not supported (sqlite3 or mcap)")
    mode = str(info.get("compression_mode") or "").lower()
    if mode not in COMPRESSION_MODES:
        raise BagError(f"{metadata_path}: unknown compression_mode {info.get('compression_mode')!r}")
    if COMPRESSION_MODES[mode] and str(info.get("compression_format") or "") != "zstd":
        raise BagError(
            f"{metadata_path}: compression format {info.get('compression_format')!r} is not supported "
            "(rosbag2 compresses with zstd); decompress the bag with `ros2 bag convert` first"
        )
    return info


def _decompressor_error(path: Path, exc: Exception) -> BagError:
    return BagError(f"{path}: zstd decompression failed ({_one_line(exc)}); the file is truncated or corrupt")


class BagReader:
    """Every message of a rosbag2 directory, file by file in storage order; topics and counts from the storage.

    Use as a context manager. `scratch` is where file-compressed storage is unpacked (default: a temporary
    directory); `payload` undoes message compression; `decode` deserialises standard message types.
    """

    def __init__(self, path: str | Path, scratch: Path | None = None) -> None:
        self.path = Path(path)
        self.info = load_metadata(self.path)
        self.metadata_path = self.path / "metadata.yaml"
        self.version: int = self.info["version"]
        self.storage: str = self.info["storage_identifier"]
        self.compression = COMPRESSION_MODES[str(self.info.get("compression_mode") or "").lower()]
        # version 4 and later list names relative to the bag; older ones may carry the bag's directory too
        self.file_paths = [self.path / PurePath(str(name)).name for name in self.info["relative_file_paths"]]
        if not self.file_paths:
            raise BagError(f"{self.metadata_path}: lists no storage file")
        missing = [p.name for p in self.file_paths if not p.is_file()]
        if missing:
            raise BagError(
                f"{self.metadata_path}: lists {missing}, missing from {self.path}; restore the files or "
                "rebuild metadata.yaml with `ros2 bag reindex`"
            )
        self.scratch = scratch
        self.files: list[StorageReader] = []
        self._tempdir: tempfile.TemporaryDirectory | None = None
        self._counts: dict[str, int] | None = None
        self._store: Any = None

    @property
    def store(self) -> Any:
        """The rosbags typestore that decodes this bag's standard types."""
        if self._store is None:
            self._store = typestore()
        return self._store

    def __enter__(self) -> BagReader:
        try:
            for path in self.file_paths:
                self.files.append(self._open(path))
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _open(self, path: Path) -> StorageReader:
        suffix = {"sqlite3": ".db3", "mcap": ".mcap"}[self.storage]
        if self.compression == "file":
            return READERS[suffix](self._unpack(path), label=path)
        return READERS[suffix](path)

    def _unpack(self, path: Path) -> Path:
        if self.scratch is None:
            self._tempdir = self._tempdir or tempfile.TemporaryDirectory(prefix="embody4d-bag-")
            self.scratch = Path(self._tempdir.name)
        self.scratch.mkdir(parents=True, exist_ok=True)
        target = self.scratch / path.name.removesuffix(".zstd")
        try:
            decompressor = zstandard.ZstdDecompressor().decompressobj()
            with path.open("rb") as source, target.open("wb") as sink:
                while chunk := source.read(1 << 20):
                    sink.write(decompressor.decompress(chunk))
        except zstandard.ZstdError as exc:
            raise _decompressor_error(path, exc) from None
        if not decompressor.eof:  # zstd stops quietly at the end of a truncated frame
            raise BagError(f"{path}: the zstd frame ends early; the file is truncated")
        return target

    def close(self) -> None:
        for storage in self.files:
            storage.close()
        self.files.clear()
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    @property
    def topics(self) -> dict[str, Topic]:
        """Topic name -> topic as the storage first declares it."""
        topics: dict[str, Topic] = {}
        for storage in self.files:
            for topic in storage.topics:
                topics.setdefault(topic.name, topic)
        return topics

    def counts(self) -> dict[str, int]:
        """Messages per topic as the storage files count them (not as any reader yields them)."""
        if self._counts is None:
            total: Counter[str] = Counter({name: 0 for name in self.topics})
            for storage in self.files:
                total.update(storage.counts())
            self._counts = dict(total)
        return self._counts

    def messages(self) -> Iterator[tuple[int, StoredMessage]]:
        """(file index, message) for every stored message, file by file."""
        for index, storage in enumerate(self.files):
            for message in storage.messages():
                yield index, message

    def payload(self, message: StoredMessage) -> bytes:
        """The serialised message (zstd message compression undone)."""
        if self.compression != "message":
            return message.data
        try:
            return zstandard.ZstdDecompressor().decompress(message.data)
        except zstandard.ZstdError as exc:
            raise BagError(
                f"{self.path}: a message on {message.topic.name} at {message.log_time} does not decompress "
                f"({_one_line(exc)}); the bag is corrupt"
            ) from None

    def decode(self, message: StoredMessage) -> Any:
        """The message as a rosbags object; standard types only (BagError for others)."""
        type_name = ros2_type_name(message.topic.type)
        if type_name not in self.store.types or message.topic.serialization_format != "cdr":
            raise BagError(
                f"{self.path}: cannot decode {message.topic.name} ({message.topic.type}, "
                f"{message.topic.serialization_format})"
            )
        try:
            return self.store.deserialize_cdr(self.payload(message), type_name)
        except BagError:
            raise
        except Exception as exc:  # malformed CDR surfaces as struct/index/value errors
            raise BagError(
                f"{self.path}: the {message.topic.name} message at {message.log_time} is not a valid "
                f"{message.topic.type} ({type(exc).__name__}: {_one_line(exc)})"
            ) from None


def _qos_for(version: int, qos: list[Qos]) -> tuple[Any, str]:
    """(metadata.yaml value, storage string) of offered QoS profiles in a given metadata version's style."""
    if version >= 9:
        profiles = dump_qos_v9(qos)
        return profiles, yaml.safe_dump(profiles, sort_keys=False, default_flow_style=False).strip()
    text = dump_qos_v8(qos)
    return text, text


@dataclass
class _OutputFile:
    storage: StorageWriter
    counts: Counter
    start: int | None = None
    end: int | None = None


class BagWriter:
    """A copy of `source` (its metadata version, compression, split files and storage records) plus new topics.

    Messages go to the output file of the same index as the input file they come from (`write`'s `file_index`);
    added messages go to the current one. `close` commits nothing if any topic's count differs from the input
    storage's plus what was added.
    """

    def __init__(self, path: Path, source: BagReader, storage: str | None = None) -> None:
        self.path = path
        self.source = source
        self.storage = storage or source.storage
        self.info = copy.deepcopy(source.info)
        self.version = source.version
        self.topics: dict[str, Topic] = dict(source.topics)
        self.expected: Counter[str] = Counter(source.counts())
        self.added_topics: dict[str, Any] = {}  # new topic name -> its metadata.yaml QoS value
        self.files: list[_OutputFile] = []
        path.mkdir()

    # ---------------------------------------------------------------------------------------------- topics

    def definition_for(self, type_name: str) -> Definition:
        """The input's definition of a type when it has one (kept verbatim), else the standard one."""
        for storage in self.source.files:
            for definition in storage.layout.definitions:
                if ros2_type_name(definition.type) == type_name and definition.text:
                    # filed under the new topic's own type name (a Dashing-style input files it as pkg/Type)
                    return dataclasses.replace(definition, type=type_name)
        store = typestore()
        text, _ = store.generate_msgdef(type_name, ros_version=2)
        return Definition(type_name, "ros2msg", text, store.hash_rihs01(type_name))

    def add_topic(self, name: str, type_name: str, qos: list[Qos]) -> Topic:
        """A new CDR topic with a standard type, registered in every output file."""
        if name in self.topics:
            raise BagError(f"{self.source.path} already has a topic {name}; choose another output name")
        definition = self.definition_for(type_name)
        metadata_qos, storage_qos = _qos_for(self.version, qos)
        type_hash = typestore().hash_rihs01(type_name) if self.version >= 7 else ""
        topic = Topic(name, type_name, "cdr", storage_qos, type_hash, definition)
        self.topics[name] = topic
        self.added_topics[name] = metadata_qos
        for output in self.files:
            output.storage.add_topic(topic)
        return topic

    # -------------------------------------------------------------------------------------------- messages

    def _file(self, index: int) -> _OutputFile:
        while len(self.files) <= index:
            writer_class, suffix = WRITERS[self.storage]
            layout = self.source.files[len(self.files)].layout if len(self.files) < len(self.source.files) else None
            storage = writer_class(self.path / f"{self.path.name}_{len(self.files)}{suffix}", layout)
            for topic in self.topics.values():
                storage.add_topic(topic)
            self.files.append(_OutputFile(storage, Counter()))
        return self.files[index]

    def write(self, message: StoredMessage, file_index: int | None = None) -> None:
        """Write a stored message as is, into output file `file_index` (default: the current one)."""
        output = self._file(max(len(self.files) - 1, 0) if file_index is None else file_index)
        output.storage.write(message)
        output.counts[message.topic.name] += 1
        output.start = message.log_time if output.start is None else min(output.start, message.log_time)
        output.end = message.log_time if output.end is None else max(output.end, message.log_time)

    def write_new(self, topic: Topic, log_time: int, payload: bytes) -> None:
        """Write a message of an added topic (compressed like the input's messages)."""
        if self.source.compression == "message":
            payload = zstandard.ZstdCompressor().compress(payload)
        self.expected[topic.name] += 1
        self.write(StoredMessage(topic, log_time, payload))

    # ---------------------------------------------------------------------------------------------- finish

    def close(self) -> None:
        """Finish every file, check the counts, compress as the input was, and write metadata.yaml."""
        self._file(len(self.source.files) - 1)  # one output file per input file, even an empty one
        names = [
            output.storage.path.name + (".zstd" if self.source.compression == "file" else "") for output in self.files
        ]
        info = self._metadata(names)
        text = yaml.safe_dump(info, sort_keys=False, default_flow_style=False, allow_unicode=True)
        for output in self.files:
            output.storage.close(self.version, text.strip())
        self._check_counts()
        if self.source.compression == "file":
            for output in self.files:
                raw = output.storage.path
                with raw.open("rb") as source, raw.with_name(raw.name + ".zstd").open("wb") as sink:
                    zstandard.ZstdCompressor().copy_stream(source, sink)
                raw.unlink()
        (self.path / "metadata.yaml").write_text(
            yaml.safe_dump(
                {"rosbag2_bagfile_information": info}, sort_keys=False, default_flow_style=False, allow_unicode=True
            )
        )

    def _check_counts(self) -> None:
        """Count every topic in the finished output files and compare with the input storage (+ added)."""
        written: Counter[str] = Counter()
        for output in self.files:
            reader = READERS[output.storage.path.suffix](output.storage.path)
            try:
                written.update(reader.counts())
            finally:
                reader.close()
        short = {
            topic: (self.expected[topic], written[topic])
            for topic in self.expected.keys() | written.keys()
            if self.expected[topic] != written[topic]
        }
        if short:
            details = ", ".join(
                f"{topic}: {want} expected, {got} written" for topic, (want, got) in sorted(short.items())
            )
            raise BagError(
                f"{self.source.path}: the copy would not hold every input message ({details}); nothing was written"
            )

    def _metadata(self, names: list[str]) -> dict[str, Any]:
        info = copy.deepcopy(self.info)
        totals: Counter[str] = Counter()
        for output in self.files:
            totals.update(output.counts)
        starts = [o.start for o in self.files if o.start is not None]
        ends = [o.end for o in self.files if o.end is not None]
        start, end = (min(starts), max(ends)) if starts else (0, 0)
        info["relative_file_paths"] = names
        info["storage_identifier"] = self.storage
        info["message_count"] = sum(totals.values())
        info["starting_time"] = {"nanoseconds_since_epoch": start}
        info["duration"] = {"nanoseconds": end - start}
        entries = [e for e in info.get("topics_with_message_count") or [] if isinstance(e, dict)]
        listed = {e.get("topic_metadata", {}).get("name") for e in entries}
        for entry in entries:
            entry["message_count"] = totals[entry["topic_metadata"]["name"]]
        for name, topic in self.topics.items():
            if name not in listed:  # in the storage but not in metadata.yaml, or added
                entries.append({"topic_metadata": self._topic_metadata(topic), "message_count": totals[name]})
        info["topics_with_message_count"] = entries
        if "files" in info or self.version >= 5:
            info["files"] = [
                {
                    "path": name,
                    "starting_time": {"nanoseconds_since_epoch": o.start or 0},
                    "duration": {"nanoseconds": (o.end or 0) - (o.start or 0)},
                    "message_count": sum(o.counts.values()),
                }
                for name, o in zip(names, self.files)
            ]
        return info

    def _topic_metadata(self, topic: Topic) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": topic.name,
            "type": topic.type,
            "serialization_format": topic.serialization_format,
        }
        if self.version >= 4:
            qos = self.added_topics.get(topic.name, topic.offered_qos_profiles)
            if self.version >= 9 and isinstance(qos, str):
                qos = yaml.safe_load(qos) or []
            entry["offered_qos_profiles"] = qos
        if self.version >= 7:
            entry["type_description_hash"] = topic.type_hash
        return entry
