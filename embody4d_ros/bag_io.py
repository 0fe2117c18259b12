"""rosbag2 (sqlite3 and MCAP) reading and writing through `rosbags`, laid out the way realsense-ros records.

A RealSense D4xx run by realsense-ros (`ros2 launch realsense2_camera rs_launch.py align_depth.enable:=true`)
publishes rgb8 colour, 16UC1 millimetre depth aligned to colour, and the colour camera_info, all stamped alike
in `camera_color_optical_frame`. `write_rgbd_bag` produces such a bag from arrays (simulation, tests);
`read_rgbd_frames` yields synchronised `Frame`s from any bag with those topics.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import yaml
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

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


class BagError(RuntimeError):
    """A bag cannot be read or written as asked; the message says what to change."""


@dataclass(frozen=True)
class CameraTopics:
    """Topic names and frame id of one RGB-D camera (defaults: realsense-ros with aligned depth)."""

    color: str = "/camera/camera/color/image_raw"
    depth: str = "/camera/camera/aligned_depth_to_color/image_raw"
    camera_info: str = "/camera/camera/color/camera_info"
    frame_id: str = "camera_color_optical_frame"


REALSENSE = CameraTopics()


def typestore() -> Any:
    """The typestore used to (de)serialise sensor_msgs; Image and CameraInfo are identical in every ROS 2 release."""
    return get_typestore(Stores.ROS2_HUMBLE)


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
) -> Path:
    """Write an RGB-D clip as a rosbag2 directory the way realsense-ros records it; returns the bag path.

    rgb: (T, H, W, 3) uint8; depth_m: (T, H, W) float32 metres (None for an RGB-only bag); K: (3, 3);
    stamps_ns: T increasing header stamps, also used as the bag receive times. Refuses an existing `path`.
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
        add = lambda topic, msgtype: writer.add_connection(topic, msgtype, typestore=store, offered_qos_profiles=[RECORDED_QOS])
        info_conn = add(topics.camera_info, CAMERA_INFO_TYPE)
        color_conn = add(topics.color, IMAGE_TYPE)
        depth_conn = add(topics.depth, IMAGE_TYPE) if depth_m is not None else None
        for index, stamp in enumerate(int(s) for s in stamps_ns):
            info_msg = make_camera_info(types, K, width, height, stamp, topics.frame_id)
            writer.write(info_conn, stamp, store.serialize_cdr(info_msg, CAMERA_INFO_TYPE))
            color_msg = rgb_to_image(types, rgb[index], stamp, topics.frame_id)
            writer.write(color_conn, stamp, store.serialize_cdr(color_msg, IMAGE_TYPE))
            if depth_conn is not None and depth_m is not None:
                depth_msg = depth_to_image(types, depth_m[index], stamp, topics.frame_id, depth_encoding)
                writer.write(depth_conn, stamp, store.serialize_cdr(depth_msg, IMAGE_TYPE))
    return path


def bag_storage(path: str | Path) -> str:
    """'sqlite3' or 'mcap': the storage of an existing bag (from its metadata)."""
    metadata_path = Path(path) / "metadata.yaml"
    if not metadata_path.is_file():
        raise BagError(f"{path} is not a rosbag2 directory (no metadata.yaml); pass the bag directory, not a file in it")
    info = yaml.safe_load(metadata_path.read_text())["rosbag2_bagfile_information"]
    return str(info["storage_identifier"])


def read_rgbd_frames(
    path: str | Path,
    topics: CameraTopics = REALSENSE,
    slop_s: float = 0.02,
    require_depth: bool = True,
) -> Iterator[Frame]:
    """Yield synchronised frames of one camera from a rosbag2 bag, in stamp order.

    Colour and depth pair by header stamp within `slop_s`; intrinsics come from the latest camera_info at or
    known (frames before the first camera_info use the first one: intrinsics are static). Without a depth topic
    in the bag, frames carry `depth=None` unless `require_depth`, which then raises with what to do.
    """
    store = typestore()
    with Reader(path) as reader:
        by_topic = {conn.topic: conn for conn in reader.connections}
        missing = [t for t in (topics.color, topics.camera_info) if t not in by_topic]
        if missing:
            raise BagError(f"{path} lacks topics {missing}; it has {sorted(by_topic)}. Set color_topic/camera_info_topic to match.")
        has_depth = topics.depth in by_topic
        if not has_depth and require_depth:
            raise BagError(
                f"{path} has no depth topic {topics.depth!r} (topics: {sorted(by_topic)}). Set depth_topic, "
                "or configure a monocular depth estimator (depth.source) for RGB-only bags."
            )
        wanted = [by_topic[t] for t in (topics.color, topics.depth, topics.camera_info) if t in by_topic]
        sync: SyncBuffer[Any] = SyncBuffer(slop_ns=int(slop_s * 1e9), queue_size=_READ_QUEUE)
        K: np.ndarray | None = None
        # pairs seen before the first camera_info wait for it (bounded): recorders write topics in any order
        waiting: deque[tuple[Stamped[Any], Stamped[Any] | None]] = deque(maxlen=_READ_QUEUE)
        for conn, _, raw in reader.messages(connections=wanted):
            msg = store.deserialize_cdr(raw, conn.msgtype)
            if conn.topic == topics.camera_info:
                K = camera_info_to_K(msg)
            else:
                stamp = stamp_to_ns(msg.header.stamp)
                if conn.topic == topics.depth:
                    waiting.extend(sync.add_depth(stamp, msg))
                elif has_depth:
                    waiting.extend(sync.add_color(stamp, msg))
                else:
                    waiting.append((Stamped(stamp, msg), None))
            while K is not None and waiting:
                color, depth = waiting.popleft()
                yield _frame(color.payload, None if depth is None else depth.payload, K, color.stamp_ns)


def _frame(color_msg: Any, depth_msg: Any, K: np.ndarray, stamp_ns: int) -> Frame:
    rgb = image_to_rgb(color_msg)
    depth = None
    if depth_msg is not None:
        depth = image_to_depth_m(depth_msg)
        if depth.shape != rgb.shape[:2]:
            raise ConversionError(f"depth {depth.shape} and colour {rgb.shape[:2]} differ in size; record aligned depth (align_depth.enable:=true)")
    return Frame(rgb=np.array(rgb), depth=None if depth is None else np.array(depth), K=K, stamp_ns=stamp_ns, frame_id=str(color_msg.header.frame_id))
