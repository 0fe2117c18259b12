"""Quirky rosbag2 bags as real ROS 2 tools write them, built and read back WITHOUT the code under test.

Bags are written with python's `sqlite3`, the `mcap` library's writer, `zstandard` and `yaml`; outputs are read
back the same way. Message payloads of the camera topics are CDR made by rosbags' typestore; other topics carry
opaque bytes (the copy must not care what they hold).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
import zstandard
from mcap.reader import make_reader
from mcap.writer import CompressionType, Writer
from rosbags.typesys import Stores, get_typestore

from model.engines.base import Engine

COLOR, DEPTH, INFO = (
    "/camera/camera/color/image_raw",
    "/camera/camera/aligned_depth_to_color/image_raw",
    "/camera/camera/color/camera_info",
)
H, W = 12, 16
K = np.array([[14.0, 0.0, 7.5], [0.0, 14.0, 5.5], [0.0, 0.0, 1.0]])
STORE = get_typestore(Stores.ROS2_HUMBLE)
# what Jazzy's recorder stores for a reliable volatile publisher (storage side, metadata version 9 style)
QOS_STORAGE = (
    "- history: unknown\n  depth: 0\n  reliability: reliable\n  durability: volatile\n"
    "  deadline:\n    sec: 9223372036\n    nsec: 854775807\n  lifespan:\n    sec: 9223372036\n"
    "    nsec: 854775807\n  liveliness: automatic\n  liveliness_lease_duration:\n    sec: 9223372036\n"
    "    nsec: 854775807\n  avoid_ros_namespace_conventions: false"
)
# the same profile edited in metadata.yaml to best effort (what maintainers and tools do)
QOS_EDITED = QOS_STORAGE.replace("reliable", "best_effort")
IMAGE_DEF, _ = STORE.generate_msgdef("sensor_msgs/msg/Image", ros_version=2)
INFO_DEF, _ = STORE.generate_msgdef("sensor_msgs/msg/CameraInfo", ros_version=2)
EXTRINSICS_DEF = "float32[9] rotation\nfloat32[3] translation\n"
ADD_TWO_INTS_DEF = "int64 a\nint64 b\n---\nint64 sum\n"


@dataclass
class Spec:
    """One topic of a fixture bag as a recorder stores it."""

    name: str
    type: str
    definition: str = ""  # empty: the recorder stored none
    definition_type: str = ""  # name the definition is stored under (default: type)
    type_hash: str = ""
    qos: str = QOS_STORAGE
    serialization_format: str = "cdr"


@dataclass
class Bag:
    """What to build; `messages` are (topic, log time, payload) in storage order."""

    specs: list[Spec]
    messages: list[tuple[str, int, bytes]]
    storage: str = "sqlite3"
    version: int = 9
    files: int = 1
    compression: str = ""  # '', 'file', 'message'
    sqlite_schema: str = "jazzy"  # jazzy (4), humble (3), foxy (topics with QoS, no schema table), dashing
    metadata_qos: dict[str, str] = field(default_factory=dict)  # topic -> QoS written to metadata.yaml instead
    custom_data: dict[str, str] | None = None
    ros_distro: str = "jazzy"
    mcap_chunk_compression: CompressionType = CompressionType.ZSTD
    mcap_chunked: bool = True
    mcap_statistics: bool = True


def image_cdr(rgb: np.ndarray, stamp: int, encoding: str = "rgb8", type_name: str = "sensor_msgs/msg/Image") -> bytes:
    Header, Time, Image = (STORE.types[n] for n in ("std_msgs/msg/Header", "builtin_interfaces/msg/Time", type_name))
    channels = rgb.shape[2] if rgb.ndim == 3 else 1
    header = Header(stamp=Time(sec=stamp // 10**9, nanosec=stamp % 10**9), frame_id="camera_color_optical_frame")
    msg = Image(
        header=header,
        height=rgb.shape[0],
        width=rgb.shape[1],
        encoding=encoding,
        is_bigendian=0,
        step=rgb.shape[1] * channels * rgb.itemsize,
        data=np.frombuffer(rgb.tobytes(), np.uint8),
    )
    return bytes(STORE.serialize_cdr(msg, "sensor_msgs/msg/Image"))


def camera_info_cdr(stamp: int) -> bytes:
    Header, Time = STORE.types["std_msgs/msg/Header"], STORE.types["builtin_interfaces/msg/Time"]
    RoI = STORE.types["sensor_msgs/msg/RegionOfInterest"]
    P = np.zeros((3, 4))
    P[:, :3] = K
    msg = STORE.types["sensor_msgs/msg/CameraInfo"](
        header=Header(stamp=Time(sec=stamp // 10**9, nanosec=stamp % 10**9), frame_id="camera_color_optical_frame"),
        height=H,
        width=W,
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=K.flatten(),
        r=np.eye(3).flatten(),
        p=P.flatten(),
        binning_x=0,
        binning_y=0,
        roi=RoI(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
    )
    return bytes(STORE.serialize_cdr(msg, "sensor_msgs/msg/CameraInfo"))


def camera_specs(dashing: bool = False, with_definitions: bool = True) -> list[Spec]:
    image, info = (
        ("sensor_msgs/Image", "sensor_msgs/CameraInfo")
        if dashing
        else ("sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo")
    )
    image_def, info_def = (IMAGE_DEF, INFO_DEF) if with_definitions else ("", "")
    return [Spec(COLOR, image, image_def), Spec(DEPTH, image, image_def), Spec(INFO, info, info_def)]


def camera_messages(
    frames: int, info_delay: int = 0, info_after_image: bool = False, seed: int = 0, t0: int = 1_700_000_000_000_000_000
) -> list[tuple[str, int, bytes]]:
    """RealSense-like storage order: camera_info, colour, depth per frame (camera_info after the image, or
    starting `info_delay` frames late, when asked)."""
    rng = np.random.default_rng(seed)
    messages = []
    for i in range(frames):
        stamp = t0 + i * 33_333_333
        rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        depth_mm = np.full((H, W), 1200, np.uint16)
        info = [(INFO, stamp + (1 if info_after_image else 0), camera_info_cdr(stamp))] if i >= info_delay else []
        frame = [(COLOR, stamp, image_cdr(rgb, stamp)), (DEPTH, stamp, image_cdr(depth_mm, stamp, "16UC1"))]
        messages += frame + info if info_after_image else info + frame
    return messages


def _sqlite_tables(schema: str) -> str:
    if schema == "dashing":
        topics = "id INTEGER PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL, serialization_format TEXT NOT NULL"
    else:
        topics = (
            "id INTEGER PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL, serialization_format TEXT NOT NULL, "
            "offered_qos_profiles TEXT NOT NULL"
        )
    if schema == "jazzy":
        topics += ", type_description_hash TEXT NOT NULL"
    sql = [
        f"CREATE TABLE topics({topics});",
        "CREATE TABLE messages(id INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL, timestamp INTEGER NOT NULL, "
        "data BLOB NOT NULL);",
        "CREATE INDEX timestamp_idx ON messages (timestamp ASC);",
    ]
    if schema in ("humble", "jazzy"):
        sql.append("CREATE TABLE schema(schema_version INTEGER PRIMARY KEY, ros_distro TEXT NOT NULL);")
    if schema == "jazzy":
        sql += [
            "CREATE TABLE metadata(id INTEGER PRIMARY KEY, metadata_version INTEGER NOT NULL, metadata TEXT NOT NULL);",
            "CREATE TABLE message_definitions(id INTEGER PRIMARY KEY, topic_type TEXT NOT NULL, "
            "encoding TEXT NOT NULL, encoded_message_definition TEXT NOT NULL, "
            "type_description_hash TEXT NOT NULL);",
        ]
    return "\n".join(sql)


def _write_sqlite(path: Path, bag: Bag, messages: list[tuple[str, int, bytes]]) -> None:
    db = sqlite3.connect(path)
    db.executescript(_sqlite_tables(bag.sqlite_schema))
    if bag.sqlite_schema in ("humble", "jazzy"):
        db.execute("INSERT INTO schema VALUES (?, ?)", (4 if bag.sqlite_schema == "jazzy" else 3, bag.ros_distro))
    ids = {}
    for spec in bag.specs:
        row = [spec.name, spec.type, spec.serialization_format]
        if bag.sqlite_schema != "dashing":
            row.append(spec.qos)
        if bag.sqlite_schema == "jazzy":
            row.append(spec.type_hash)
        columns = ["name", "type", "serialization_format", "offered_qos_profiles", "type_description_hash"][: len(row)]
        ids[spec.name] = db.execute(
            f"INSERT INTO topics ({', '.join(columns)}) VALUES ({', '.join('?' * len(row))})", row
        ).lastrowid
    if bag.sqlite_schema == "jazzy":
        seen = set()
        for spec in bag.specs:
            stored_as = spec.definition_type or spec.type
            if stored_as not in seen:
                seen.add(stored_as)
                db.execute(
                    "INSERT INTO message_definitions (topic_type, encoding, encoded_message_definition, "
                    "type_description_hash) VALUES (?, ?, ?, ?)",
                    (stored_as, "ros2msg" if spec.definition else "", spec.definition, spec.type_hash),
                )
        db.execute(
            "INSERT INTO metadata (metadata_version, metadata) VALUES (?, ?)", (bag.version, "recorder's metadata")
        )
    for topic, stamp, data in messages:
        db.execute("INSERT INTO messages (topic_id, timestamp, data) VALUES (?, ?, ?)", (ids[topic], stamp, data))
    db.commit()
    db.close()


def _write_mcap(path: Path, bag: Bag, messages: list[tuple[str, int, bytes]]) -> None:
    with path.open("wb") as stream:
        writer = Writer(
            stream,
            compression=bag.mcap_chunk_compression,
            chunk_size=4096,
            use_chunking=bag.mcap_chunked,
            use_statistics=bag.mcap_statistics,
        )
        writer.start(profile="ros2", library="rosbag2 fixture")
        writer.add_attachment(1, 2, "calibration.yaml", "application/yaml", b"fx: 14.0\n")
        channels = {}
        for spec in bag.specs:
            # MCAP names a schema after the channel's type (sqlite3 files service events under the service)
            schema = writer.register_schema(spec.type, "ros2msg", spec.definition.encode()) if spec.definition else 0
            metadata = {"offered_qos_profiles": spec.qos}
            if spec.type_hash:
                metadata["topic_type_hash"] = spec.type_hash
            channels[spec.name] = writer.register_channel(spec.name, spec.serialization_format, schema, metadata)
        for sequence, (topic, stamp, data) in enumerate(messages):
            writer.add_message(channels[topic], stamp, data, stamp - 1000, sequence)
        writer.add_metadata("rosbag2", {"serialized_metadata": "recorder's metadata", "ROS_DISTRO": bag.ros_distro})
        writer.add_metadata("robot", {"serial": "D435-0042"})
        writer.finish()


def build_bag(path: Path, bag: Bag) -> Path:
    """Write `bag` as a rosbag2 directory at `path` (the storage files and a metadata.yaml of `bag.version`)."""
    path.mkdir()
    suffix = {"sqlite3": ".db3", "mcap": ".mcap"}[bag.storage]
    stored = [
        (t, s, zstandard.ZstdCompressor().compress(d) if bag.compression == "message" else d)
        for t, s, d in bag.messages
    ]
    per_file = -(-len(stored) // bag.files)
    names, files = [], []
    for index in range(bag.files):
        chunk = stored[index * per_file : (index + 1) * per_file]
        name = f"{path.name}_{index}{suffix}"
        (_write_sqlite if bag.storage == "sqlite3" else _write_mcap)(path / name, bag, chunk)
        if bag.compression == "file":
            raw = (path / name).read_bytes()
            (path / name).unlink()
            name += ".zstd"
            (path / name).write_bytes(zstandard.ZstdCompressor().compress(raw))
        names.append(name)
        times = [s for _, s, _ in chunk] or [0]
        files.append(
            {
                "path": name,
                "starting_time": {"nanoseconds_since_epoch": min(times)},
                "duration": {"nanoseconds": max(times) - min(times)},
                "message_count": len(chunk),
            }
        )
    times = [s for _, s, _ in stored]
    topics = []
    for spec in bag.specs:
        meta = {"name": spec.name, "type": spec.type, "serialization_format": spec.serialization_format}
        if bag.version >= 4:
            qos = bag.metadata_qos.get(spec.name, spec.qos)
            meta["offered_qos_profiles"] = yaml.safe_load(qos) if bag.version >= 9 else qos
        if bag.version >= 7:
            meta["type_description_hash"] = spec.type_hash
        topics.append({"topic_metadata": meta, "message_count": sum(t == spec.name for t, _, _ in stored)})
    info = {
        "version": bag.version,
        "storage_identifier": bag.storage,
        "duration": {"nanoseconds": max(times) - min(times)},
        "starting_time": {"nanoseconds_since_epoch": min(times)},
        "message_count": len(stored),
        "topics_with_message_count": topics,
        "compression_format": "zstd" if bag.compression else "",
        "compression_mode": bag.compression.upper(),
        "relative_file_paths": names,
    }
    if bag.version >= 5:
        info["files"] = files
    if bag.version >= 6:
        info["custom_data"] = bag.custom_data
    if bag.version >= 8:
        info["ros_distro"] = bag.ros_distro
    (path / "metadata.yaml").write_text(yaml.safe_dump({"rosbag2_bagfile_information": info}, sort_keys=False))
    return path


# ------------------------------------------------------------------------------------------ independent reading


@dataclass
class Contents:
    """Everything a bag directory holds, read without the code under test."""

    metadata: dict
    messages: list[tuple[str, int, bytes]]  # (topic, log time, stored bytes), storage order per file
    topics: dict[str, dict]  # topic -> what the storage says about it
    definitions: list[tuple]  # sqlite3 message_definitions rows / MCAP schemas (name, encoding, text)
    records: list[tuple[str, dict]]  # MCAP metadata records
    attachments: list[tuple[str, bytes]]
    files: int
    extras: dict = field(default_factory=dict)


def read_bag(path: Path) -> Contents:
    info = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    contents = Contents(info, [], {}, [], [], [], len(info["relative_file_paths"]))
    for name in info["relative_file_paths"]:
        data = (path / name).read_bytes()
        if name.endswith(".zstd"):
            data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
        if info["storage_identifier"] == "sqlite3":
            _read_sqlite(path / name, data, contents)
        else:
            read_mcap_data(data, contents)
    return contents


def _read_sqlite(path: Path, data: bytes, contents: Contents) -> None:
    plain = path.with_name(path.name + ".plain.db3") if path.suffix == ".zstd" else path
    if plain != path:
        plain.write_bytes(data)
    db = sqlite3.connect(f"file:{plain}?mode=ro", uri=True)
    try:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        db.row_factory = sqlite3.Row
        names = {}
        for row in db.execute("SELECT * FROM topics"):
            row = dict(row)
            names[row.pop("id")] = row["name"]
            contents.topics[row["name"]] = row
        contents.messages += [
            (names[r["topic_id"]], r["timestamp"], bytes(r["data"]))
            for r in db.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY id")
        ]
        if "message_definitions" in tables:
            contents.definitions += [tuple(r)[1:] for r in db.execute("SELECT * FROM message_definitions ORDER BY id")]
        if "schema" in tables:
            contents.extras["schema"] = [tuple(r) for r in db.execute("SELECT * FROM schema")]
        contents.extras["tables"] = sorted(tables)
    finally:
        db.close()
        if plain != path:
            plain.unlink()


def read_mcap_data(data: bytes, contents: Contents) -> None:
    import io

    reader = make_reader(io.BytesIO(data))
    contents.extras["profile"] = reader.get_header().profile
    summary = reader.get_summary()
    contents.extras["compression"] = {c.compression for c in summary.chunk_indexes}
    for _schema, channel, message in reader.iter_messages(log_time_order=False):
        contents.messages.append((channel.topic, message.log_time, bytes(message.data)))
        contents.extras.setdefault("publish", []).append(
            (channel.topic, message.log_time, message.publish_time, message.sequence)
        )
    for channel in summary.channels.values():
        schema = summary.schemas.get(channel.schema_id)
        contents.topics[channel.topic] = {
            "type": schema.name if schema else "",
            "serialization_format": channel.message_encoding,
            "metadata": dict(channel.metadata),
        }
    contents.definitions += [(s.name, s.encoding, s.data.decode()) for s in summary.schemas.values()]
    contents.records += [(r.name, dict(r.metadata)) for r in reader.iter_metadata()]
    contents.attachments += [(a.name, bytes(a.data)) for a in reader.iter_attachments()]


def assert_copied(source: Path, output: Path) -> tuple[Contents, Contents]:
    """Every input message (topic, log time, stored bytes), definition, topic record and metadata field is in the
    output; returns both contents for further checks."""
    before, after = read_bag(source), read_bag(output)
    input_topics = set(before.topics)
    copied = [m for m in after.messages if m[0] in input_topics]
    assert sorted(copied) == sorted(before.messages)
    for topic, record in before.topics.items():
        assert after.topics[topic] == record, topic
    for definition in before.definitions:
        assert definition in after.definitions
    assert after.files == before.files
    for key in ("version", "storage_identifier", "compression_mode", "compression_format", "custom_data", "ros_distro"):
        assert after.metadata.get(key) == before.metadata.get(key), key
    listed_before = {t["topic_metadata"]["name"]: t for t in before.metadata["topics_with_message_count"]}
    listed_after = {t["topic_metadata"]["name"]: t for t in after.metadata["topics_with_message_count"]}
    for topic, entry in listed_before.items():
        assert listed_after[topic]["topic_metadata"] == entry["topic_metadata"], topic
    counted = {topic: sum(m[0] == topic for m in after.messages) for topic in after.topics}
    assert {t: e["message_count"] for t, e in listed_after.items()} == counted
    assert after.metadata["message_count"] == len(after.messages)
    return before, after


class WarpOnly(Engine):
    """Test stand-in: returns the geometric warp as is."""

    name = "warp_only"

    def generate(self, request):
        return request.warped_rgb


def warp_only(params):
    return WarpOnly()
