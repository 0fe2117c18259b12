"""`embody4d augment-bag INPUT OUTPUT`: add virtual camera topics to a recorded rosbag2, offline.

Every input message is copied unchanged (topic, receive time, serialised bytes; MCAP publish time and sequence),
with every definition, offered QoS, type hash, metadata.yaml field (version, custom_data, ros_distro, compression)
and storage record (sqlite3 tables, MCAP metadata records and attachments) as the input stored them, split files
split alike. Each configured virtual camera adds `<ns>/color/image_raw`, `<ns>/color/camera_info` (and
`<ns>/openpi/image_raw` with openpi_224) plus its static transform on `/tf_static`. Frames go through the same
runtime as the live node, but nothing is dropped: each frame is generated as soon as the messages it needs are read
(with the robot layer on, that includes the joint states just after its stamp, so that the robot is drawn with the
state interpolated at the frame, which the live node cannot wait for).

Before the output is committed, every topic's message count in the written files is compared with the input
storage's (plus what was added); any difference fails the run. The output is written beside OUTPUT in a hidden
`.NAME.partial-PID` directory, locked while the run lives, and renamed into place at the end; a run that is
killed leaves that directory behind, and the next run writing into the same directory removes it.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import signal
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from rosbags.interfaces import QosDurability, QosHistory
from tqdm import tqdm

from embody4d_ros.bag import BagError, BagReader, BagWriter, Topic, ros2_type_name
from embody4d_ros.bag_io import CAMERA_INFO_TYPE, IMAGE_TYPE, RECORDED_QOS, CameraTopics, RgbdSync, check_camera_topics
from embody4d_ros.conversions import MessageTypes, make_transform, rosbags_types, stamp_to_ns
from embody4d_ros.live import OutputTopics, frame_messages, output_topics
from embody4d_ros.params import ParameterError, resolve
from embody4d_ros.robot_layer import ROBOT_TOPICS
from embody4d_ros.runtime import VirtualCameraRuntime, VirtualFrame
from model.depth import DepthError
from model.engines.base import Engine, EngineError

TF_STATIC = "/tf_static"
TF_TYPE = "tf2_msgs/msg/TFMessage"
# /tf_static is latched: late subscribers (ros2 bag play, tf2 buffers) must still get it
TF_STATIC_QOS = RECORDED_QOS._replace(history=QosHistory.KEEP_LAST, depth=1, durability=QosDurability.TRANSIENT_LOCAL)
PARTIAL_LOCK = ".embody4d-augment-bag.lock"


@dataclass
class _Camera:
    """One virtual camera: its runtime, input synchroniser and output topics."""

    name: str
    params: Mapping[str, Any]
    runtime: VirtualCameraRuntime
    sync: RgbdSync
    roles: dict[str, str]  # input topic -> color | depth | camera_info
    topics: OutputTopics | None = None
    outputs: dict[str, Topic] = field(default_factory=dict)  # output topic name -> topic
    frames: int = 0
    # synced frames waiting for the joint states after their stamp (colour, depth, camera_info)
    waiting: deque[tuple[Any, Any, Any]] = field(default_factory=deque)


class _Augmenter:
    """Feeds the camera topics to one runtime per virtual camera and writes what they make."""

    def __init__(
        self,
        writer: BagWriter,
        reader: BagReader,
        cameras: Mapping[str, Mapping[str, Any]],
        engine_factory: Callable[[Mapping[str, Any]], Engine] | None,
    ) -> None:
        self.writer = writer
        self.store = reader.store
        self.types: MessageTypes = rosbags_types(self.store)
        self.log_time = 0  # receive time given to generated messages: that of the message that completed them
        self.source_frame_id = ""
        self.cameras: dict[str, _Camera] = {}
        for name, params in cameras.items():
            topics = CameraTopics(params["color_topic"], params["depth_topic"], params["camera_info_topic"])
            uses_sensor = params["depth.source"] == "sensor"
            check_camera_topics(reader, topics, require_depth=uses_sensor)
            runtime = VirtualCameraRuntime(
                params,
                # (mypy cannot type lambdas with default arguments, which bind each camera's name here)
                publish=lambda frame, n=name: self.write_frame(self.cameras[n], frame),  # type: ignore[misc]
                engine=engine_factory(params) if engine_factory else None,
                log=lambda text, n=name: tqdm.write(f"[{n}] {text}", file=sys.stderr),  # type: ignore[misc]
                now_ns=lambda: self.log_time,
                on_pose=lambda pose, n=name: self.write_pose(self.cameras[n], pose),  # type: ignore[misc]
            )
            if runtime.robot_layer is not None:  # offline: every due hand-eye check runs, so re-runs warn alike
                runtime.robot_layer.hand_eye.skip_when_busy = False
            sync = RgbdSync(
                int(params["sync_slop_s"] * 1e9),
                params["queue_size"],
                has_depth=uses_sensor,
                on_drop=runtime.stats.drop,
            )
            roles = {topics.color: "color", topics.camera_info: "camera_info"}
            if uses_sensor:
                roles[topics.depth] = "depth"
            self.cameras[name] = _Camera(name, params, runtime, sync, roles)
        self.input_topics = {topic for camera in self.cameras.values() for topic in camera.roles}
        if any(camera.runtime.robot_layer is not None for camera in self.cameras.values()):
            self.input_topics |= set(ROBOT_TOPICS)  # robot.enable auto: on where the bag has them
        self.tf_static = self._tf_static_topic()
        for camera in self.cameras.values():
            self._add_output_topics(camera)

    def _tf_static_topic(self) -> Topic:
        """The input's /tf_static when it has one (our transforms join it), else a new latched topic."""
        existing = self.writer.topics.get(TF_STATIC)
        if existing is None:
            return self.writer.add_topic(TF_STATIC, TF_TYPE, [TF_STATIC_QOS])
        if ros2_type_name(existing.type) != TF_TYPE or existing.serialization_format != "cdr":
            raise BagError(
                f"the input's {TF_STATIC} has type {existing.type} ({existing.serialization_format}), "
                f"expected {TF_TYPE} in CDR; the virtual camera's transform cannot join it"
            )
        return existing

    def _add_output_topics(self, camera: _Camera) -> None:
        camera.topics = output_topics(camera.params)
        wanted = {camera.topics.image: IMAGE_TYPE, camera.topics.camera_info: CAMERA_INFO_TYPE}
        if camera.topics.openpi is not None:
            wanted[camera.topics.openpi] = IMAGE_TYPE
        for name, type_name in wanted.items():
            if name in self.writer.topics:
                raise BagError(
                    f"virtual camera {camera.name!r} would write {name}, which the input bag (or another "
                    "virtual camera) already has; choose another output_namespace"
                )
            camera.outputs[name] = self.writer.add_topic(name, type_name, [RECORDED_QOS])

    def feed(self, topic: str, msg: Any) -> None:
        for camera in self.cameras.values():
            if topic in ROBOT_TOPICS:
                if camera.runtime.robot_layer is not None:
                    camera.runtime.robot_layer.feed_message(topic, msg)
            elif topic in camera.roles:
                camera.waiting.extend(camera.sync.add(camera.roles[topic], msg))
            self._generate(camera)

    def _generate(self, camera: _Camera, end: bool = False) -> None:
        """Generate the waiting frames in order. Offline, a frame can wait for the robot's joint states after its stamp,
        so that it is drawn with the state interpolated there rather than the last one before it (live, the node
        cannot wait); it waits until they come or the bag's clock is `robot.joint_slop_s` past the frame."""
        layer = camera.runtime.robot_layer
        while camera.waiting:
            color, depth, camera_info = camera.waiting[0]
            stamp = stamp_to_ns(color.header.stamp)
            patience_ns = int(camera.params["robot.joint_slop_s"] * 1e9)
            if not end and layer is not None and not layer.joint_states_cover(stamp):
                if self.log_time <= stamp + patience_ns:
                    return
            camera.waiting.popleft()
            self.source_frame_id = str(color.header.frame_id)
            camera.runtime.on_synced(color, depth, camera_info)
            camera.runtime.drain()  # generate each before the next: a bounded queue would drop the oldest

    def ignore_robot_topic(self, topic: str, error: BagError) -> None:
        """A robot topic that does not decode as its standard type: warned once, then left out."""
        self.input_topics.discard(topic)
        tqdm.write(f"warning: {topic} is ignored by the robot layer: {error}", file=sys.stderr)

    def finish(self) -> None:
        for camera in self.cameras.values():
            self._generate(camera, end=True)
            camera.runtime.flush()
            camera.runtime.drain()
            if camera.runtime.robot_layer is not None:  # the last hand-eye check may still be running
                camera.runtime.robot_layer.hand_eye.wait()

    def write_frame(self, camera: _Camera, frame: VirtualFrame) -> None:
        assert camera.topics is not None, "_add_output_topics() runs before the first frame"
        for name, msg in frame_messages(self.types, frame, camera.topics).items():
            topic = camera.outputs[name]
            self._write(topic, msg, ros2_type_name(topic.type))
        camera.frames += 1

    def write_pose(self, camera: _Camera, pose: Any) -> None:
        transform = make_transform(
            self.types, pose, self.log_time, self.source_frame_id, camera.params["virtual_frame_id"]
        )
        self._write(self.tf_static, self.store.types[TF_TYPE](transforms=[transform]), TF_TYPE)

    def _write(self, topic: Topic, msg: Any, type_name: str) -> None:
        self.writer.write_new(topic, self.log_time, bytes(self.store.serialize_cdr(msg, type_name)))


class PartialOutput:
    """OUTPUT is built in a hidden `.NAME.partial-PID` directory beside it and renamed into place by `commit`.

    The directory holds a lock file, locked for as long as this process lives (the kernel drops the lock when a
    process dies, even by SIGKILL), so that any later run can tell a dead run's leftovers from a live run's work.
    """

    def __init__(self, output: Path) -> None:
        self.output = output
        self.path = output.parent / f".{output.name}.partial-{os.getpid()}"
        self.lock: Any = None

    def __enter__(self) -> PartialOutput:
        parent = self.output.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            remove_stale_partials(parent)
            self.path.mkdir()
            self.lock = (self.path / PARTIAL_LOCK).open("w")
            fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self.__exit__()
            raise BagError(
                f"{self.output}: cannot write in {parent} ({exc.strerror}); choose an OUTPUT in a writable directory"
            ) from None
        return self

    @property
    def bag(self) -> Path:
        return self.path / self.output.name

    def commit(self) -> None:
        if self.output.exists():
            raise BagError(f"{self.output} appeared while augment-bag ran; nothing was written over it")
        self.bag.rename(self.output)

    def __exit__(self, *exc: Any) -> None:
        if self.lock is not None:
            self.lock.close()
        shutil.rmtree(self.path, ignore_errors=True)


def remove_stale_partials(directory: Path) -> None:
    """Remove the partial outputs of augment-bag runs that died (their lock is free) in `directory`."""
    for stale in directory.glob(".*.partial-*"):
        lock_path = stale / PARTIAL_LOCK
        if lock_path.is_file():
            try:
                with lock_path.open("a") as lock:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live run holds it
            shutil.rmtree(stale, ignore_errors=True)
        elif stale.is_dir() and not any(stale.iterdir()):
            # killed between creating the directory and its lock: empty, and its process is gone
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
    """Write OUTPUT = INPUT plus the virtual cameras.

    Returns {'messages': n, 'cameras': {name: frames, ...}, 'drops': ...}.

    cameras: node name -> validated parameters (`params.resolve`). storage: 'sqlite3' or 'mcap' (default: the
    input's). engine_factory: builds each camera's engine from its parameters (default: the `engine` parameter).
    """
    input_path, output_path = Path(input_path), Path(output_path)
    if output_path.exists():
        raise BagError(f"{output_path} already exists; augment-bag never overwrites, choose a new OUTPUT or remove it")
    reader = BagReader(input_path)  # checks metadata.yaml and its files before anything is created
    with PartialOutput(output_path) as partial:
        reader.scratch = partial.path / "input"  # file-compressed storage unpacks here: removed with the rest
        with reader:
            counts = reader.counts()
            writer = BagWriter(partial.bag, reader, storage)
            augmenter = _Augmenter(writer, reader, cameras, engine_factory)
            bar = tqdm(total=sum(counts.values()), unit="msg", desc=f"augment {input_path.name}", disable=not progress)
            copied = 0
            with bar:
                for file_index, message in reader.messages():
                    writer.write(message, file_index)
                    copied += 1
                    if message.topic.name in augmenter.input_topics:
                        augmenter.log_time = message.log_time
                        try:
                            decoded = reader.decode(message)
                        except BagError as exc:
                            if message.topic.name not in ROBOT_TOPICS:
                                raise
                            augmenter.ignore_robot_topic(message.topic.name, exc)  # the robot layer goes without it
                            continue
                        augmenter.feed(message.topic.name, decoded)
                    bar.update()
            augmenter.finish()
            writer.close()
        partial.commit()
    return {
        "messages": copied,
        "cameras": {name: c.frames for name, c in augmenter.cameras.items()},
        "drops": {name: c.runtime.stats.summary()["drops"] for name, c in augmenter.cameras.items()},
        "robot": {
            name: dict(c.runtime.robot_layer.counters)
            for name, c in augmenter.cameras.items()
            if c.runtime.robot_layer is not None
        },
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="input rosbag2 directory (sqlite3 or MCAP)")
    parser.add_argument("output", type=Path, help="output rosbag2 directory (must not exist)")
    parser.add_argument(
        "--params-file",
        type=Path,
        help="ROS 2 parameters file (config/virtual_camera.yaml form); each node section is one virtual camera",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a parameter for every camera, e.g. target.yaw_deg=30 or target.pose=[0,0,0,0,0,0,1]",
    )
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
    except OSError as exc:  # disk full, permissions changed mid-run: the partial output is already removed
        print(f"embody4d augment-bag: error: {exc.filename or args.output}: {exc.strerror or exc}", file=sys.stderr)
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
