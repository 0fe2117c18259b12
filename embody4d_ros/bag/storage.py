"""One rosbag2 storage file (sqlite3 `.db3` or `.mcap`), read and written record for record.

Topics, message definitions and QoS come from the file itself, never from metadata.yaml, and are kept as stored
(definition text, hashes, QoS strings, MCAP channel metadata and metadata records) so that a copy is verbatim.
A file that cannot be read raises `BagError` naming the file; nothing here decodes a message.
"""

from __future__ import annotations

import sqlite3
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import zstandard
from mcap.exceptions import McapError
from mcap.reader import make_reader
from mcap.records import Attachment, Message
from mcap.stream_reader import StreamReader
from mcap.writer import CompressionType
from mcap.writer import Writer as McapFileWriter

MCAP_PROFILE = "ros2"
MCAP_LIBRARY = "embody4d_ros augment-bag (mcap python)"
# rosbag2_storage_mcap's default chunk size
MCAP_CHUNK_SIZE = 786432
MCAP_COMPRESSION = {"": CompressionType.NONE, "zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4}
# the layout `ros2 bag record` (Iron and newer) creates; used when the output is not a copy of a sqlite3 input
SQLITE_SCHEMA = """
CREATE TABLE schema(schema_version INTEGER PRIMARY KEY, ros_distro TEXT NOT NULL);
CREATE TABLE metadata(id INTEGER PRIMARY KEY, metadata_version INTEGER NOT NULL, metadata TEXT NOT NULL);
CREATE TABLE topics(id INTEGER PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL, serialization_format TEXT NOT NULL,
  offered_qos_profiles TEXT NOT NULL, type_description_hash TEXT NOT NULL);
CREATE TABLE message_definitions(id INTEGER PRIMARY KEY, topic_type TEXT NOT NULL, encoding TEXT NOT NULL,
  encoded_message_definition TEXT NOT NULL, type_description_hash TEXT NOT NULL);
CREATE TABLE messages(id INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL, timestamp INTEGER NOT NULL,
  data BLOB NOT NULL);
CREATE INDEX timestamp_idx ON messages (timestamp ASC);
"""
SQLITE_SCHEMA_VERSION = 4
# how the mcap library reports a damaged file (lz4 raises RuntimeError, CRC mismatches ValueError)
MCAP_DAMAGE = (
    McapError,
    ValueError,
    EOFError,
    OSError,
    KeyError,
    IndexError,
    RuntimeError,
    struct.error,
    zstandard.ZstdError,
)


class BagError(RuntimeError):
    """A bag cannot be read or written as asked; the message says which file and what to change."""


@dataclass(frozen=True)
class Definition:
    """A message definition as the file stores it (sqlite3 `message_definitions` row, MCAP schema)."""

    type: str  # the name it is stored under (a service's name for its service-event topic)
    encoding: str  # ros2msg, ros2idl, or '' when the recorder stored none
    text: str
    type_hash: str = ""  # sqlite3 only: MCAP keeps the hash in the channel metadata


@dataclass(frozen=True)
class Topic:
    """A topic as the file stores it (sqlite3 `topics` row, MCAP channel)."""

    name: str
    type: str
    serialization_format: str
    offered_qos_profiles: str = ""  # serialised as stored (a YAML string)
    type_hash: str = ""
    definition: Definition | None = None
    channel_metadata: tuple[tuple[str, str], ...] = ()  # MCAP only, kept verbatim


@dataclass(frozen=True)
class StoredMessage:
    topic: Topic
    log_time: int
    data: bytes  # as stored (zstd-compressed in message-compressed bags)
    publish_time: int | None = None  # MCAP only
    sequence: int = 0


@dataclass
class FileLayout:
    """What a storage file holds besides topics and messages, to be reproduced in a copy of the same storage."""

    storage: str
    ros_distro: str = ""
    definitions: list[Definition] = field(default_factory=list)
    sqlite_tables: list[str] = field(default_factory=list)  # CREATE statements, verbatim
    sqlite_schema_version: int | None = None
    mcap_profile: str = MCAP_PROFILE
    mcap_compression: str | None = "zstd"  # chunk compression; None: messages outside chunks
    mcap_metadata: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    mcap_attachments: list[Attachment] = field(default_factory=list)


class StorageReader(Protocol):
    path: Path
    layout: FileLayout
    topics: list[Topic]

    def counts(self) -> dict[str, int]:
        """Messages per topic name, as the storage counts them."""

    def messages(self) -> Iterator[StoredMessage]:
        """Every stored message, in storage order."""

    def close(self) -> None: ...


class StorageWriter(Protocol):
    path: Path

    def add_topic(self, topic: Topic) -> None: ...

    def write(self, message: StoredMessage) -> None: ...

    def close(self, metadata_version: int, metadata_text: str) -> None: ...


def service_name(type_name: str) -> str | None:
    """`pkg/srv/Name` for a service-event type `pkg/srv/Name_Event`: rosbag2 stores the definition under it."""
    return type_name[: -len("_Event")] if "/srv/" in type_name and type_name.endswith("_Event") else None


# --------------------------------------------------------------------------------------------------- sqlite3


class Sqlite3Reader:
    """A `.db3` file, opened read-only; every schema from Dashing (no `schema` table) to Jazzy (schema 4)."""

    def __init__(self, path: Path, label: Path | None = None) -> None:
        self.path = path
        self.label = label or path  # the file the user knows (the compressed one for file-compressed bags)
        try:
            # read-only but not immutable: a recorder killed mid-write leaves messages in the WAL file
            self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            self._load()
        except sqlite3.Error as exc:
            raise BagError(
                f"{self.label}: not a readable rosbag2 sqlite3 file ({exc}); it may be truncated or corrupt"
            ) from None

    def _load(self) -> None:
        tables = {name: sql for name, sql in self.db.execute("SELECT name, sql FROM sqlite_master WHERE type='table'")}
        if not {"messages", "topics"} <= set(tables):
            raise BagError(f"{self.label}: not a rosbag2 sqlite3 file (no messages/topics tables)")
        statements = [
            sql
            for (sql,) in self.db.execute(
                "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
            )
        ]
        self.layout = FileLayout("sqlite3", sqlite_tables=statements)
        if "schema" in tables:
            row = self.db.execute("SELECT schema_version, ros_distro FROM schema").fetchone()
            if row:
                self.layout.sqlite_schema_version, self.layout.ros_distro = int(row[0]), str(row[1])
        if "message_definitions" in tables:
            self.layout.definitions = [
                Definition(*row)
                for row in self.db.execute(
                    "SELECT topic_type, encoding, encoded_message_definition, type_description_hash "
                    "FROM message_definitions ORDER BY id"
                )
            ]
        by_type = {d.type: d for d in self.layout.definitions}
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(topics)")}
        optional = [c if c in columns else "''" for c in ("offered_qos_profiles", "type_description_hash")]
        self.topic_ids: dict[int, Topic] = {}
        for topic_id, name, type_name, fmt, qos, type_hash in self.db.execute(
            f"SELECT id, name, type, serialization_format, {', '.join(optional)} FROM topics ORDER BY id"
        ):
            definition = by_type.get(type_name) or by_type.get(service_name(type_name) or "")
            self.topic_ids[topic_id] = Topic(name, type_name, fmt, qos or "", type_hash or "", definition)
        self.topics = list(self.topic_ids.values())

    def counts(self) -> dict[str, int]:
        counts = {topic.name: 0 for topic in self.topics}
        try:
            for topic_id, count in self.db.execute("SELECT topic_id, COUNT(*) FROM messages GROUP BY topic_id"):
                if topic_id not in self.topic_ids:
                    raise BagError(
                        f"{self.label}: {count} messages belong to topic id {topic_id}, which is not in the "
                        "topics table; the file is corrupt"
                    )
                counts[self.topic_ids[topic_id].name] += count
        except sqlite3.Error as exc:
            raise BagError(f"{self.label}: cannot count messages ({exc}); the file is truncated or corrupt") from None
        return counts

    def messages(self) -> Iterator[StoredMessage]:
        try:
            # the order `ros2 bag play` uses; id breaks ties in recording order
            for topic_id, timestamp, data in self.db.execute(
                "SELECT topic_id, timestamp, data FROM messages ORDER BY timestamp, id"
            ):
                if topic_id not in self.topic_ids:
                    raise BagError(
                        f"{self.label}: a message belongs to topic id {topic_id}, which is not in the "
                        "topics table; the file is corrupt"
                    )
                yield StoredMessage(self.topic_ids[topic_id], timestamp, bytes(data))
        except sqlite3.Error as exc:
            raise BagError(f"{self.label}: cannot read messages ({exc}); the file is truncated or corrupt") from None

    def close(self) -> None:
        self.db.close()


class Sqlite3Writer:
    """A new `.db3` file: the input's own table layout when it was sqlite3 too, else rosbag2's current one."""

    def __init__(self, path: Path, layout: FileLayout | None) -> None:
        self.path = path
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA journal_mode=OFF")  # the whole file is discarded on failure anyway
        self.db.execute("PRAGMA synchronous=OFF")
        same = layout if layout is not None and layout.storage == "sqlite3" else None
        self.db.executescript(";\n".join(same.sqlite_tables) if same is not None else SQLITE_SCHEMA)
        tables = {name for (name,) in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        self.topic_columns = [row[1] for row in self.db.execute("PRAGMA table_info(topics)") if row[1] != "id"]
        self.has_metadata_table = "metadata" in tables
        self.definitions: set[str] | None = set() if "message_definitions" in tables else None
        if "schema" in tables:
            version = (same.sqlite_schema_version if same is not None else None) or SQLITE_SCHEMA_VERSION
            self.db.execute("INSERT INTO schema VALUES (?, ?)", (version, layout.ros_distro if layout else ""))
        for definition in layout.definitions if layout else ():
            self._add_definition(definition)
        self.topic_ids: dict[str, int] = {}

    def _add_definition(self, definition: Definition) -> None:
        if self.definitions is None or definition.type in self.definitions:
            return
        self.definitions.add(definition.type)
        self.db.execute(
            "INSERT INTO message_definitions (topic_type, encoding, encoded_message_definition, "
            "type_description_hash) VALUES (?, ?, ?, ?)",
            (definition.type, definition.encoding, definition.text, definition.type_hash),
        )

    def add_topic(self, topic: Topic) -> None:
        if topic.definition is not None:
            self._add_definition(topic.definition)
        values = {
            "name": topic.name,
            "type": topic.type,
            "serialization_format": topic.serialization_format,
            "offered_qos_profiles": topic.offered_qos_profiles,
            "type_description_hash": topic.type_hash,
        }
        columns = [c for c in self.topic_columns if c in values]
        cursor = self.db.execute(
            f"INSERT INTO topics ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            [values[c] for c in columns],
        )
        assert cursor.lastrowid is not None  # set by every successful INSERT
        self.topic_ids[topic.name] = cursor.lastrowid

    def write(self, message: StoredMessage) -> None:
        self.db.execute(
            "INSERT INTO messages (topic_id, timestamp, data) VALUES (?, ?, ?)",
            (self.topic_ids[message.topic.name], message.log_time, message.data),
        )

    def close(self, metadata_version: int, metadata_text: str) -> None:
        if self.has_metadata_table:
            self.db.execute(
                "INSERT INTO metadata (metadata_version, metadata) VALUES (?, ?)", (metadata_version, metadata_text)
            )
        self.db.commit()
        self.db.close()


# ------------------------------------------------------------------------------------------------------ MCAP


class McapReader:
    """A `.mcap` file written with the `ros2` profile; needs its summary section (a finished recording)."""

    def __init__(self, path: Path, label: Path | None = None) -> None:
        self.path = path
        self.label = label or path  # the file the user knows (the compressed one for file-compressed bags)
        self.stream = path.open("rb")
        try:
            self._load()
        except BagError:
            self.stream.close()
            raise
        except MCAP_DAMAGE as exc:
            self.stream.close()
            raise BagError(
                f"{self.label}: not a readable MCAP file ({type(exc).__name__}: {exc}); it may be truncated "
                "or corrupt (`mcap recover` can rebuild a truncated file)"
            ) from None

    def _load(self) -> None:
        reader = make_reader(self.stream)
        header = reader.get_header()
        summary = reader.get_summary()
        if summary is None:
            raise BagError(
                f"{self.label}: the MCAP file has no summary (a recording that did not finish, or a "
                "truncated copy); rebuild it with `mcap recover` and try again"
            )
        compressions = {index.compression for index in summary.chunk_indexes}
        self.layout = FileLayout(
            "mcap",
            mcap_profile=header.profile,
            mcap_compression=compressions.pop() if len(compressions) == 1 else None if not compressions else "zstd",
        )
        self.layout.mcap_metadata = [(record.name, dict(record.metadata)) for record in reader.iter_metadata()]
        self.layout.mcap_attachments = list(reader.iter_attachments())
        distro = dict(self.layout.mcap_metadata).get("rosbag2", {}).get("ROS_DISTRO", "")
        self.layout.ros_distro = distro
        schemas = {sid: Definition(s.name, s.encoding, s.data.decode()) for sid, s in summary.schemas.items()}
        self.layout.definitions = list(schemas.values())
        self.channel_topics: dict[int, Topic] = {}
        for cid, channel in summary.channels.items():
            definition = schemas.get(channel.schema_id)
            metadata = dict(channel.metadata)
            type_name = definition.type if definition is not None else metadata.get("type", "")
            self.channel_topics[cid] = Topic(
                channel.topic,
                type_name,
                channel.message_encoding,
                metadata.get("offered_qos_profiles", ""),
                metadata.get("topic_type_hash", ""),
                definition,
                tuple(metadata.items()),
            )
        self.topics = list(self.channel_topics.values())
        self.statistics = summary.statistics

    def counts(self) -> dict[str, int]:
        counts = {topic.name: 0 for topic in self.topics}
        if self.statistics is not None and self.statistics.channel_message_counts:
            per_channel = self.statistics.channel_message_counts
        else:  # no statistics record: count the message records themselves
            per_channel = {}
            for message in self._records(Message):
                per_channel[message.channel_id] = per_channel.get(message.channel_id, 0) + 1
        for cid, count in per_channel.items():
            if cid not in self.channel_topics:
                raise BagError(
                    f"{self.label}: {count} messages on channel {cid}, which the file never defines; "
                    "the file is corrupt"
                )
            counts[self.channel_topics[cid].name] += count
        return counts

    def messages(self) -> Iterator[StoredMessage]:
        for message in self._records(Message):
            if message.channel_id not in self.channel_topics:
                raise BagError(f"{self.label}: a message on channel {message.channel_id}, which the file never defines")
            yield StoredMessage(
                self.channel_topics[message.channel_id],
                message.log_time,
                bytes(message.data),
                message.publish_time,
                message.sequence,
            )

    def _records(self, kind: type) -> Iterator[Any]:
        """Records of one kind in file order, chunks decompressed, CRCs checked."""
        self.stream.seek(0)
        try:
            for record in StreamReader(self.stream, validate_crcs=True).records:
                if isinstance(record, kind):
                    yield record
        except BagError:
            raise
        except MCAP_DAMAGE as exc:
            raise BagError(
                f"{self.label}: cannot read MCAP records ({type(exc).__name__}: {exc}); the file is "
                "truncated or corrupt"
            ) from None

    def close(self) -> None:
        self.stream.close()


class McapWriter:
    """A new `.mcap` file with the `ros2` profile; the input's chunk compression, metadata records and attachments."""

    def __init__(self, path: Path, layout: FileLayout | None) -> None:
        self.path = path
        self.stream = path.open("wb")
        same = layout if layout is not None and layout.storage == "mcap" else None
        chunk_compression = same.mcap_compression if same is not None else "zstd"
        self.writer = McapFileWriter(
            self.stream,
            chunk_size=MCAP_CHUNK_SIZE,
            use_chunking=chunk_compression is not None,
            compression=MCAP_COMPRESSION.get(chunk_compression or "", CompressionType.ZSTD),
        )
        self.writer.start(profile=same.mcap_profile if same is not None else MCAP_PROFILE, library=MCAP_LIBRARY)
        self.metadata = same.mcap_metadata if same is not None else []
        self.ros_distro = layout.ros_distro if layout else ""
        for attachment in same.mcap_attachments if same is not None else ():
            self.writer.add_attachment(
                attachment.create_time, attachment.log_time, attachment.name, attachment.media_type, attachment.data
            )
        self.schema_ids: dict[Definition, int] = {}
        for definition in layout.definitions if layout else ():
            self._schema_id(definition)
        self.channel_ids: dict[str, int] = {}

    def _schema_id(self, definition: Definition | None) -> int:
        if definition is None:
            return 0
        key = definition.__class__(definition.type, definition.encoding, definition.text)  # hashes live in channels
        if key not in self.schema_ids:
            self.schema_ids[key] = self.writer.register_schema(key.type, key.encoding, key.text.encode())
        return self.schema_ids[key]

    def add_topic(self, topic: Topic) -> None:
        definition = topic.definition
        if definition is not None and definition.type != topic.type:
            # MCAP readers take a channel's type from its schema's name (sqlite3 files a service event's
            # definition under the service's name)
            definition = Definition(topic.type, definition.encoding, definition.text)
        metadata = dict(topic.channel_metadata) or {"offered_qos_profiles": topic.offered_qos_profiles}
        if topic.type_hash and not topic.channel_metadata:
            metadata["topic_type_hash"] = topic.type_hash
        self.channel_ids[topic.name] = self.writer.register_channel(
            topic.name, topic.serialization_format, self._schema_id(definition), metadata
        )

    def write(self, message: StoredMessage) -> None:
        publish_time = message.log_time if message.publish_time is None else message.publish_time
        self.writer.add_message(
            self.channel_ids[message.topic.name], message.log_time, message.data, publish_time, message.sequence
        )

    def close(self, metadata_version: int, metadata_text: str) -> None:
        records = dict(self.metadata)
        # rosbag2 keeps its bag metadata in a "rosbag2" record: it must describe this file, not the input
        rosbag2 = {**records.get("rosbag2", {"ROS_DISTRO": self.ros_distro}), "serialized_metadata": metadata_text}
        for name, data in [*((n, d) for n, d in self.metadata if n != "rosbag2"), ("rosbag2", rosbag2)]:
            self.writer.add_metadata(name, data)
        self.writer.finish()
        self.stream.close()


# typed as the protocols so that callers see one reader / writer type, whichever the storage
READERS: dict[str, Callable[..., StorageReader]] = {".db3": Sqlite3Reader, ".mcap": McapReader}
WRITERS: dict[str, tuple[Callable[[Path, FileLayout | None], StorageWriter], str]] = {
    "sqlite3": (Sqlite3Writer, ".db3"),
    "mcap": (McapWriter, ".mcap"),
}
