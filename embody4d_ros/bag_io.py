"""rosbag2 (sqlite3 and MCAP) RGB-D frames, laid out the way realsense-ros records.

A RealSense D4xx run by realsense-ros (`ros2 launch realsense2_camera rs_launch.py align_depth.enable:=true`)
publishes rgb8 colour, 16UC1 millimetre depth aligned to colour, and the colour camera_info, all stamped alike
in `camera_color_optical_frame`. `write_rgbd_bag` produces such a bag from arrays (simulation, tests);
`read_rgbd_frames` yields synchronised `Frame`s from any bag with those topics (read through `embody4d_ros.bag`:
every stored message, whatever metadata.yaml says).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer

from embody4d_ros.bag import BagError, BagReader, ros2_type_name, typestore
from embody4d_ros.conversions import (
    ConversionError,
    Frame,
    camera_info_to_K,
    depth_to_image,
    image_to_depth_m,
    image_to_rgb,
    make_camera_info,
    rgb_to_image,
    rosbags_types,
    stamp_to_ns,
)
from embody4d_ros.runtime import Stamped, SyncBuffer

IMAGE_TYPE = "sensor_msgs/msg/Image"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
STORAGES = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
# rosbag2 metadata version 8 (Iron/Jazzy layout); rosbags writes 8 or 9
BAG_VERSION = 8
_READ_QUEUE = 64

_INFINITE = QosTime(sec=9223372036, nsec=854775807)
# what `ros2 bag record` stores for a reliable, volatile publisher (history and depth are not discoverable)
RECORDED_QOS = Qos(
    history=QosHistory.UNKNOWN,
    depth=0,
    reliability=QosReliability.RELIABLE,
    durability=QosDurability.VOLATILE,
    deadline=_INFINITE,
    lifespan=_INFINITE,
    liveliness=QosLiveliness.AUTOMATIC,
    liveliness_lease_duration=_INFINITE,
    avoid_ros_namespace_conventions=False,
)


@dataclass(frozen=True)
class CameraTopics:
    """Topic names and frame id of one RGB-D camera (defaults: realsense-ros with aligned depth)."""

    color: str = "/camera/camera/color/image_raw"
    depth: str = "/camera/camera/aligned_depth_to_color/image_raw"
    camera_info: str = "/camera/camera/color/camera_info"
    frame_id: str = "camera_color_optical_frame"


REALSENSE = CameraTopics()


@dataclass(frozen=True)
class RecordedTopic:
    """Another topic recorded beside the camera (a robot's `/joint_states`, `/tf_static`, ...): its name, type,
    offered QoS and (receive time in ns, rosbags message) pairs."""

    name: str
    msgtype: str
    qos: Qos
    messages: Sequence[tuple[int, Any]]


def storage_plugin(storage: str) -> StoragePlugin:
    if storage not in STORAGES:
        raise BagError(f"storage must be one of {sorted(STORAGES)}, got {storage!r}")
    return STORAGES[storage]


def write_rgbd_bag(
    path: str | Path,
    rgb: np.ndarray,
    depth_m: np.ndarray | None,
    K: np.ndarray,
    stamps_ns: Sequence[int],
    storage: str = "sqlite3",
    topics: CameraTopics = REALSENSE,
    depth_encoding: str = "16UC1",
    others: Sequence[RecordedTopic] = (),
) -> Path:
    """Write an RGB-D clip as a rosbag2 directory the way realsense-ros records it; returns the bag path.

    rgb: (T, H, W, 3) uint8; depth_m: (T, H, W) float32 metres (None for an RGB-only bag); K: (3, 3);
    stamps_ns: T increasing header stamps, also used as the bag receive times. others: more topics, their messages
    interleaved with the camera's by receive time as a recorder stores them. Refuses an existing `path`.
    """
    path = Path(path)
    if path.exists():
        raise BagError(f"{path} already exists; choose a new output path or remove it first")
    rgb = np.asarray(rgb)
    if rgb.ndim != 4 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
        raise BagError(f"rgb must be (T, H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    count, height, width = rgb.shape[:3]
    if depth_m is not None and np.shape(depth_m) != (count, height, width):
        raise BagError(f"depth_m must be (T, H, W) = {(count, height, width)}, got {np.shape(depth_m)}")
    if len(stamps_ns) != count:
        raise BagError(f"need one stamp per frame: {count} frames, {len(stamps_ns)} stamps")
    store = typestore()
    types = rosbags_types(store)
    with Writer(path, version=BAG_VERSION, storage_plugin=storage_plugin(storage)) as writer:
        add = lambda topic, msgtype: writer.add_connection(
            topic, msgtype, typestore=store, offered_qos_profiles=[RECORDED_QOS]
        )
        info_conn = add(topics.camera_info, CAMERA_INFO_TYPE)
        color_conn = add(topics.color, IMAGE_TYPE)
        depth_conn = add(topics.depth, IMAGE_TYPE) if depth_m is not None else None
        other_conns = [
            writer.add_connection(other.name, other.msgtype, typestore=store, offered_qos_profiles=[other.qos])
            for other in others
        ]
        pending = deque(
            sorted(
                (
                    (int(time_ns), order, conn, other.msgtype, msg)
                    for other, conn in zip(others, other_conns)
                    for order, (time_ns, msg) in enumerate(other.messages)
                ),
                key=lambda item: item[:2],
            )
        )
        for index, stamp in enumerate(int(s) for s in stamps_ns):
            while pending and pending[0][0] <= stamp:
                time_ns, _, conn, msgtype, msg = pending.popleft()
                writer.write(conn, time_ns, store.serialize_cdr(msg, msgtype))
            info_msg = make_camera_info(types, K, width, height, stamp, topics.frame_id)
            writer.write(info_conn, stamp, store.serialize_cdr(info_msg, CAMERA_INFO_TYPE))
            color_msg = rgb_to_image(types, rgb[index], stamp, topics.frame_id)
            writer.write(color_conn, stamp, store.serialize_cdr(color_msg, IMAGE_TYPE))
            if depth_conn is not None and depth_m is not None:
                depth_msg = depth_to_image(types, depth_m[index], stamp, topics.frame_id, depth_encoding)
                writer.write(depth_conn, stamp, store.serialize_cdr(depth_msg, IMAGE_TYPE))
        for time_ns, _, conn, msgtype, msg in pending:
            writer.write(conn, time_ns, store.serialize_cdr(msg, msgtype))
    return path


def image_topics(reader: BagReader) -> list[str]:
    return sorted(name for name, topic in reader.topics.items() if ros2_type_name(topic.type) == IMAGE_TYPE)


def check_camera_topics(reader: BagReader, topics: CameraTopics, require_depth: bool = True) -> bool:
    """Refuse up front a bag whose camera topics are missing, empty, of another type or not CDR; returns has_depth."""
    present, counts = reader.topics, reader.counts()
    listing = f"its image topics: {', '.join(image_topics(reader)) or 'none'}"
    if topics.depth not in present and require_depth:
        raise BagError(
            f"{reader.path} has no depth topic {topics.depth!r} ({listing}). Set depth_topic, or configure a monocular "
            "depth estimator (depth.source=depth_anything_v2 with depth.model_path) for RGB-only bags."
        )
    for role, name, expected in (
        ("colour", topics.color, IMAGE_TYPE),
        ("depth", topics.depth, IMAGE_TYPE),
        ("camera_info", topics.camera_info, CAMERA_INFO_TYPE),
    ):
        topic = present.get(name)
        if topic is None and role == "depth":
            continue
        if topic is None:
            problem = f"has no {role} topic {name!r}"
        elif ros2_type_name(topic.type) != expected:
            problem = f"has {role} topic {name!r} of type {topic.type}, not {expected}"
        elif topic.serialization_format != "cdr":
            problem = f"stores {role} topic {name!r} as {topic.serialization_format!r}, not CDR: it cannot be decoded"
        elif not counts.get(name):
            problem = f"has no message on {role} topic {name!r}"
        else:
            continue
        raise BagError(
            f"{reader.path} {problem} ({listing}); set color_topic, depth_topic and camera_info_topic to match"
        )
    return topics.depth in present


class RgbdSync:
    """Colour, depth and camera_info messages in storage order -> (colour, depth or None, camera_info) triples.

    Colour and depth pair by header stamp (`SyncBuffer`). Pairs that arrive before the first camera_info wait for
    it (up to `queue_size`): recorders write topics in any order and camera_info is static.
    """

    def __init__(
        self, slop_ns: int, queue_size: int, has_depth: bool, on_drop: Callable[[str, int], None] | None = None
    ) -> None:
        self.sync: SyncBuffer[Any] = SyncBuffer(slop_ns=slop_ns, queue_size=queue_size, on_drop=on_drop)
        self.has_depth = has_depth
        self.on_drop = on_drop
        self.camera_info: Any = None
        self.waiting: deque[tuple[Stamped[Any], Stamped[Any] | None]] = deque()
        self.queue_size = queue_size

    def add(self, role: str, msg: Any) -> list[tuple[Any, Any, Any]]:
        """role: 'color', 'depth' or 'camera_info'; returns the triples this message completes."""
        if role == "camera_info":
            self.camera_info = msg
        else:
            stamp = stamp_to_ns(msg.header.stamp)
            pairs: Sequence[tuple[Stamped[Any], Stamped[Any] | None]]
            if role == "depth":
                pairs = self.sync.add_depth(stamp, msg)
            elif self.has_depth:
                pairs = self.sync.add_color(stamp, msg)
            else:
                pairs = [(Stamped(stamp, msg), None)]
            for pair in pairs:
                if len(self.waiting) == self.queue_size:
                    self.waiting.popleft()
                    if self.on_drop is not None:
                        self.on_drop("color_no_camera_info", 1)
                self.waiting.append(pair)
        ready = []
        while self.camera_info is not None and self.waiting:
            color, depth = self.waiting.popleft()
            ready.append((color.payload, None if depth is None else depth.payload, self.camera_info))
        return ready


def read_rgbd_frames(
    path: str | Path,
    topics: CameraTopics = REALSENSE,
    slop_s: float = 0.02,
    require_depth: bool = True,
) -> Iterator[Frame]:
    """Yield synchronised frames of one camera from a rosbag2 bag, in storage order.

    Colour and depth pair by header stamp within `slop_s`; intrinsics come from the latest camera_info at or
    before the frame (frames before the first camera_info use the first one: intrinsics are static). Without a
    depth topic in the bag, frames carry `depth=None` unless `require_depth`, which then raises with what to do.
    """
    with BagReader(path) as reader:
        has_depth = check_camera_topics(reader, topics, require_depth)
        roles = {topics.color: "color", topics.camera_info: "camera_info"}
        if has_depth:
            roles[topics.depth] = "depth"
        sync = RgbdSync(int(slop_s * 1e9), _READ_QUEUE, has_depth)
        for _, message in reader.messages():
            role = roles.get(message.topic.name)
            if role is not None:
                for color, depth, info in sync.add(role, reader.decode(message)):
                    yield _frame(color, depth, camera_info_to_K(info), stamp_to_ns(color.header.stamp))


def _frame(color_msg: Any, depth_msg: Any, K: np.ndarray, stamp_ns: int) -> Frame:
    rgb = image_to_rgb(color_msg)
    depth = None
    if depth_msg is not None:
        depth = image_to_depth_m(depth_msg)
        if depth.shape != rgb.shape[:2]:
            raise ConversionError(
                f"depth {depth.shape} and colour {rgb.shape[:2]} differ in size; "
                "record aligned depth (align_depth.enable:=true)"
            )
    return Frame(
        rgb=np.array(rgb),
        depth=None if depth is None else np.array(depth),
        K=K,
        stamp_ns=stamp_ns,
        frame_id=str(color_msg.header.frame_id),
    )
