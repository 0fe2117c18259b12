"""`embody4d augment-bag INPUT OUTPUT`: add virtual camera topics to a recorded rosbag2, offline.

Every input message is copied unchanged (topic, type, receive time, serialised bytes, message definition and
offered QoS), and each configured virtual camera adds `<ns>/color/image_raw`, `<ns>/color/camera_info` (and
`<ns>/openpi/image_raw` with openpi_224) plus its static transform on `/tf_static`. Frames go through the same
runtime as the live node, but nothing is dropped: each frame is generated before the next message is read.

The output is written beside OUTPUT in a hidden `.NAME.partial-PID` directory and renamed into place at the end,
so an interrupted run never leaves a half-written bag at OUTPUT.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from rosbags.interfaces import QosDurability, QosHistory
from rosbags.rosbag2 import Reader, Writer
from tqdm import tqdm

from embody4d_ros.bag_io import (
    BAG_VERSION,
    CAMERA_INFO_TYPE,
    IMAGE_TYPE,
    RECORDED_QOS,
    BagError,
    bag_storage,
    storage_plugin,
    typestore,
)
from embody4d_ros.conversions import MessageTypes, make_transform, rosbags_types
from embody4d_ros.live import OutputTopics, frame_messages, output_topics
from embody4d_ros.params import ParameterError, resolve
from embody4d_ros.runtime import VirtualCameraRuntime, VirtualFrame
from model.depth import DepthError
from model.engines.base import Engine, EngineError

TF_STATIC = "/tf_static"
TF_TYPE = "tf2_msgs/msg/TFMessage"
# /tf_static is latched: late subscribers (ros2 bag play, tf2 buffers) must still get it
TF_STATIC_QOS = RECORDED_QOS._replace(history=QosHistory.KEEP_LAST, depth=1, durability=QosDurability.TRANSIENT_LOCAL)


@dataclass
class _Camera:
    """One virtual camera: its runtime and output connections."""

    name: str
    params: Mapping[str, Any]
    runtime: VirtualCameraRuntime
    topics: OutputTopics | None = None
    connections: dict[str, Any] = field(default_factory=dict)  # output topic -> connection
    frames: int = 0


class _Augmenter:
    """Copies messages and feeds the camera topics to one runtime per virtual camera."""

    def __init__(self, writer: Writer, cameras: Mapping[str, Mapping[str, Any]], input_topics: set[str],
                 engine_factory: Callable[[Mapping[str, Any]], Engine] | None) -> None:
        self.writer = writer
        self.store = typestore()
        self.types: MessageTypes = rosbags_types(self.store)
        self.log_time = 0  # receive time given to generated messages: that of the message that completed them
        self.source_frame_id = ""
        self.tf_connection: Any = None
        self.cameras: dict[str, _Camera] = {}
        for name, params in cameras.items():
            if params["depth_topic"] not in input_topics and params["depth.source"] == "sensor":
                raise BagError(
                    f"the input bag has no depth topic {params['depth_topic']!r} and virtual camera {name!r} uses "
                    "depth.source=sensor; set depth_topic, or depth.source=depth_anything_v2 with depth.model_path"
                )
            runtime = VirtualCameraRuntime(
                params,
                # (mypy cannot type lambdas with default arguments, which bind each camera's name here)
                publish=lambda frame, n=name: self.write_frame(self.cameras[n], frame),  # type: ignore[misc]
                engine=engine_factory(params) if engine_factory else None,
                log=lambda text, n=name: tqdm.write(f"[{n}] {text}", file=sys.stderr),  # type: ignore[misc]
                now_ns=lambda: self.log_time,
                on_pose=lambda pose, n=name: self.write_pose(self.cameras[n], pose),  # type: ignore[misc]
            )
            self.cameras[name] = _Camera(name, params, runtime)

    def add_output_connections(self, copied: Mapping[str, Any]) -> None:
        """Virtual camera topics; /tf_static reuses the input's connection when it has one."""
        taken = set(copied)
        self.tf_connection = copied.get(TF_STATIC)
        if self.tf_connection is not None and self.tf_connection.msgtype != TF_TYPE:
            raise BagError(f"the input's {TF_STATIC} has type {self.tf_connection.msgtype}, expected {TF_TYPE}")
        if self.tf_connection is None:
            self.tf_connection = self.writer.add_connection(TF_STATIC, TF_TYPE, typestore=self.store, offered_qos_profiles=[TF_STATIC_QOS])
        for camera in self.cameras.values():
            topics = output_topics(camera.params)
            wanted = {topics.image: IMAGE_TYPE, topics.camera_info: CAMERA_INFO_TYPE}
            if topics.openpi is not None:
                wanted[topics.openpi] = IMAGE_TYPE
            for topic, msgtype in wanted.items():
                if topic in taken:
                    raise BagError(f"virtual camera {camera.name!r} would write {topic}, which the input bag already has; "
                                   "choose another output_namespace")
                camera.connections[topic] = self.writer.add_connection(topic, msgtype, typestore=self.store, offered_qos_profiles=[RECORDED_QOS])
                taken.add(topic)
            camera.topics = topics

    def feed(self, topic: str, msg: Any) -> None:
        for camera in self.cameras.values():
            params, runtime = camera.params, camera.runtime
            if topic == params["camera_info_topic"]:
                runtime.on_camera_info(msg)
            elif topic == params["color_topic"]:
                self.source_frame_id = str(msg.header.frame_id)
                runtime.on_color(msg)
            elif topic == params["depth_topic"]:
                runtime.on_depth(msg)
            runtime.drain()

    def finish(self) -> None:
        for camera in self.cameras.values():
            camera.runtime.flush()
            camera.runtime.drain()

    def write_frame(self, camera: _Camera, frame: VirtualFrame) -> None:
        assert camera.topics is not None, "add_output_connections() runs before the first frame"
        for topic, msg in frame_messages(self.types, frame, camera.topics).items():
            connection = camera.connections[topic]
            self._write(connection, msg, connection.msgtype)
        camera.frames += 1

    def write_pose(self, camera: _Camera, pose: Any) -> None:
        transform = make_transform(self.types, pose, self.log_time, self.source_frame_id, camera.params["virtual_frame_id"])
        self._write(self.tf_connection, self.store.types[TF_TYPE](transforms=[transform]), TF_TYPE)

    def _write(self, connection: Any, msg: Any, msgtype: str) -> None:
        self.writer.write(connection, self.log_time, self.store.serialize_cdr(msg, msgtype))


def _copy_connection(writer: Writer, connection: Any, store: Any) -> Any:
    """An output connection identical to the input's: definition, hash, serialisation format and offered QoS."""
    msgdef, digest = connection.msgdef.data, connection.digest
    if not (msgdef and digest):
        # older bags store no definition; regenerate it for standard types
        if connection.msgtype not in store.types:
            raise BagError(f"{connection.topic} ({connection.msgtype}) has no message definition in the input bag and is not "
                           "a standard type; re-record it with a rosbag2 that stores definitions (Iron or newer)")
        msgdef = digest = None
    return writer.add_connection(
        connection.topic,
        connection.msgtype,
        typestore=store,
        msgdef=msgdef,
        rihs01=digest,
        serialization_format=connection.ext.serialization_format,
        offered_qos_profiles=connection.ext.offered_qos_profiles,
    )


def _partial_dir(output: Path) -> Path:
    return output.parent / f".{output.name}.partial-{os.getpid()}"


def _remove_stale_partials(output: Path) -> None:
    """Remove partial outputs of earlier runs that were killed (their process no longer exists)."""
    for stale in output.parent.glob(f".{output.name}.partial-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def augment_bag(
    input_path: str | Path,
    output_path: str | Path,
    cameras: Mapping[str, Mapping[str, Any]],
    storage: str | None = None,
    engine_factory: Callable[[Mapping[str, Any]], Engine] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Write OUTPUT = INPUT plus the virtual cameras; returns {'messages': n, 'cameras': {name: frames, ...}, 'drops': ...}.

    cameras: node name -> validated parameters (`params.resolve`). storage: 'sqlite3' or 'mcap' (default: the
    input's). engine_factory: builds each camera's engine from its parameters (default: the `engine` parameter).
    """
    input_path, output_path = Path(input_path), Path(output_path)
    if output_path.exists():
        raise BagError(f"{output_path} already exists; augment-bag never overwrites, choose a new OUTPUT or remove it")
    if not input_path.is_dir():
        raise BagError(f"{input_path} is not a rosbag2 directory")
    storage = storage or bag_storage(input_path)
    plugin = storage_plugin(storage)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(output_path)
    partial = _partial_dir(output_path)
    partial.mkdir()
    try:
        with Reader(input_path) as reader:
            store = typestore()
            summary: dict[str, Any] = {"messages": 0}
            with Writer(partial / output_path.name, version=BAG_VERSION, storage_plugin=plugin) as writer:
                augmenter = _Augmenter(writer, cameras, {c.topic for c in reader.connections}, engine_factory)
                copied = {c.id: _copy_connection(writer, c, store) for c in reader.connections}
                augmenter.add_output_connections({c.topic: copied[c.id] for c in reader.connections})
                camera_topics = {p[k] for p in cameras.values() for k in ("color_topic", "depth_topic", "camera_info_topic")}
                bar = tqdm(total=reader.message_count, unit="msg", desc=f"augment {input_path.name}", disable=not progress)
                with bar:
                    for connection, timestamp, raw in reader.messages():
                        writer.write(copied[connection.id], timestamp, raw)
                        augmenter.log_time = timestamp
                        if connection.topic in camera_topics:
                            augmenter.feed(connection.topic, store.deserialize_cdr(raw, connection.msgtype))
                        summary["messages"] += 1
                        bar.update()
                augmenter.finish()
        (partial / output_path.name).rename(output_path)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    summary["cameras"] = {name: c.frames for name, c in augmenter.cameras.items()}
    summary["drops"] = {name: c.runtime.stats.summary()["drops"] for name, c in augmenter.cameras.items()}
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="input rosbag2 directory (sqlite3 or MCAP)")
    parser.add_argument("output", type=Path, help="output rosbag2 directory (must not exist)")
    parser.add_argument("--params-file", type=Path, help="ROS 2 parameters file (config/virtual_camera.yaml form); "
                        "each node section is one virtual camera")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="override a parameter for every camera, e.g. target.yaw_deg=30 or target.pose=[0,0,0,0,0,0,1]")
    parser.add_argument("--storage", choices=("sqlite3", "mcap"), help="output storage (default: the input's)")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    # SIGTERM unwinds like Ctrl-C so that the partial output is removed
    previous_handler = signal.signal(signal.SIGTERM, _interrupt)
    try:
        cameras = resolve(args.params_file, args.param)
        summary = augment_bag(args.input, args.output, cameras, storage=args.storage)
    except (BagError, ParameterError, DepthError, EngineError) as exc:
        print(f"embody4d augment-bag: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("embody4d augment-bag: interrupted; no output written", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    frames = ", ".join(f"{name}: {count} frames" for name, count in summary["cameras"].items())
    print(f"wrote {args.output}: {summary['messages']} input messages copied; {frames}")
    for name, drops in summary["drops"].items():
        if drops:
            print(f"  {name} skipped frames: {drops}", file=sys.stderr)
    return 0
