"""The ROS-free core of the virtual camera: synchronisation, scheduling, drop policy, engine call, counters.

Transports (the rclpy node, the DDS transport, the bag tool) feed messages in and receive `VirtualFrame`s out;
nothing here imports ROS, so every policy is tested with plain pytest.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Generic, Mapping, TypeVar

import cv2
import numpy as np

from embody4d_ros.conversions import (
    ConversionError,
    Frame,
    camera_info_to_K,
    image_to_depth_m,
    image_to_rgb,
    stamp_to_ns,
)
from embody4d_ros.robot_layer import RobotLayer, stack_views
from embody4d_ros.robot_layer import config_from_params as robot_config_from_params
from model.depth import DepthError, DepthEstimator, create_depth_estimator
from model.depth_align import StreamAlignment
from model.depth_sensor import warp_settings
from model.engines.base import Engine, EngineError
from model.engines.fallback import create_engine_with_fallback
from model.geometry import GeometryError, OrbitTarget, PoseTarget, invert_transform, matrix_to_pose
from model.virtual_view import VirtualView, prepare_virtual_view, resolve_target

Payload = TypeVar("Payload")


@dataclass
class Stamped(Generic[Payload]):
    """A message (or anything) with its header stamp in nanoseconds."""

    stamp_ns: int
    payload: Payload


class SyncBuffer(Generic[Payload]):
    """Approximate time synchroniser of colour and depth: pairs whose stamps differ by at most `slop_ns`.

    Each stream holds at most `queue_size` messages (the oldest goes first), so memory stays bounded under any
    burst. Colour stamps must increase: a colour older than or equal to the last emitted pair is rejected.
    Dropped messages are counted by reason in `drops` for the caller's diagnostics.
    """

    def __init__(self, slop_ns: int, queue_size: int, on_drop: Callable[[str, int], None] | None = None) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.slop_ns = int(slop_ns)
        self.color: deque[Stamped[Payload]] = deque()
        self.depth: deque[Stamped[Payload]] = deque()
        self.queue_size = queue_size
        self.last_emitted_ns: int | None = None
        self.drops: dict[str, int] = {}
        self.on_drop = on_drop

    def _drop(self, reason: str, count: int = 1) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + count
        if self.on_drop is not None:
            self.on_drop(reason, count)

    def _push(self, queue: deque[Stamped[Payload]], name: str, stamp_ns: int, payload: Payload) -> bool:
        if self.last_emitted_ns is not None and stamp_ns <= self.last_emitted_ns:
            self._drop(f"{name}_stale_stamp")
            return False
        if queue and stamp_ns <= queue[-1].stamp_ns:
            # out of order or repeated: keep the stream monotonic, the first arrival wins
            self._drop(f"{name}_out_of_order")
            return False
        queue.append(Stamped(stamp_ns, payload))
        if len(queue) > self.queue_size:
            queue.popleft()
            self._drop(f"{name}_queue_full")
        return True

    def add_color(self, stamp_ns: int, payload: Payload) -> list[tuple[Stamped[Payload], Stamped[Payload]]]:
        """Add a colour message; returns the (colour, depth) pairs completed by it, oldest first."""
        self._push(self.color, "color", stamp_ns, payload)
        return self._match()

    def add_depth(self, stamp_ns: int, payload: Payload) -> list[tuple[Stamped[Payload], Stamped[Payload]]]:
        """Add a depth message; returns the (colour, depth) pairs completed by it, oldest first."""
        self._push(self.depth, "depth", stamp_ns, payload)
        return self._match()

    def _match(self) -> list[tuple[Stamped[Payload], Stamped[Payload]]]:
        pairs = []
        while self.color and self.depth:
            color = self.color[0]
            best = min(self.depth, key=lambda d: abs(d.stamp_ns - color.stamp_ns))
            if abs(best.stamp_ns - color.stamp_ns) <= self.slop_ns:
                if min(self.color, key=lambda c: abs(c.stamp_ns - best.stamp_ns)) is not color:
                    # a newer colour is closer to this depth: pair them, this colour stays unmatched
                    self.color.popleft()
                    self._drop("color_unmatched")
                    continue
                pairs.append((color, best))
                self.color.popleft()
                while self.depth and self.depth[0].stamp_ns <= best.stamp_ns:
                    if self.depth.popleft() is not best:
                        self._drop("depth_unmatched")
                self.last_emitted_ns = color.stamp_ns
            elif best.stamp_ns > color.stamp_ns:
                # every depth is newer than this colour by more than the slop: it can never be matched
                self.color.popleft()
                self._drop("color_unmatched")
            else:
                while self.depth and self.depth[0].stamp_ns < color.stamp_ns - self.slop_ns:
                    self.depth.popleft()
                    self._drop("depth_unmatched")
        return pairs


# SyncBuffer drop reason (after the stream name) -> what it means for the user
_SYNC_DROPS = {
    "stale_stamp": "stamp not newer than the last synchronised frame (clock jumped back or a repeated message)",
    "out_of_order": "stamp not newer than the previous message on the same topic",
    "queue_full": "more messages waiting than queue_size; its partner topic is late or missing",
    "unmatched": "no partner message within sync_slop_s; check that colour and depth are stamped alike",
}


@dataclass
class VirtualFrame:
    """One published virtual view: rgb (h, w, 3) uint8, K (3, 3) of the virtual camera, the source's stamp."""

    rgb: np.ndarray
    K: np.ndarray
    stamp_ns: int
    frame_id: str
    source_frame_id: str


class SequenceGaps:
    """Messages of one topic that never reached its callback, from the gaps in each publisher's sequence numbers.

    A reliable reader keeps the last `queue_size` messages for its callback: when the node falls that far behind, the
    oldest are overwritten, and DDS reports no loss for them (its lost-message event only counts what never
    arrived). Every publisher numbers what it sends, one by one, so a gap between two messages of one publisher is
    exactly what was lost on the way or overwritten; messages lost after the last one received show no gap.
    """

    def __init__(self) -> None:
        self._last: dict[Any, int] = {}

    def missed(self, publisher: Any, sequence: int | None) -> int:
        """Messages of `publisher` skipped before this one numbered `sequence` (None: the transport has no numbers)."""
        if sequence is None:
            return 0
        last = self._last.get(publisher)
        self._last[publisher] = sequence
        return max(0, sequence - last - 1) if last is not None else 0


class ThrottledLog:
    """Log each kind of warning at most once per `period_s`, saying how many were suppressed meanwhile."""

    def __init__(
        self, log: Callable[[str], None], period_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.log, self.period_s, self.clock = log, period_s, clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warn(self, key: str, message: str) -> bool:
        """Returns whether the message was logged."""
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.period_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        suppressed = self._suppressed.pop(key, 0)
        self._last[key] = now
        self.log(message + (f" ({suppressed} more since the last report)" if suppressed else ""))
        return True


class RuntimeStats:
    """Counters and per-stage latencies (ms, the last `window` samples of each) for diagnostics and benchmarks."""

    def __init__(self, window: int = 512) -> None:
        self.counts: dict[str, int] = {}
        self.drops: dict[str, int] = {}
        self.latency_ms: dict[str, deque[float]] = {}
        self.window = window
        self._lock = threading.Lock()

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + n

    def drop(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self.drops[reason] = self.drops.get(reason, 0) + n

    def record(self, stage: str, ms: float) -> None:
        with self._lock:
            self.latency_ms.setdefault(stage, deque(maxlen=self.window)).append(float(ms))

    def summary(self) -> dict[str, Any]:
        """{'counts': {...}, 'drops': {...}, 'latency_ms': {stage: {'p50', 'p99', 'max', 'n'}}}."""
        with self._lock:  # copies only: the stages record while the percentiles are computed
            counts, drops = dict(self.counts), dict(self.drops)
            samples = {stage: np.array(v) for stage, v in self.latency_ms.items() if v}
        latency = {}
        for stage, v in samples.items():
            # one percentile call per stage: this runs on the executor thread, under the GIL, every report
            p50, p99 = np.percentile(v, [50, 99])
            latency[stage] = {"p50": float(p50), "p99": float(p99), "max": float(v.max()), "n": len(v)}
        return {"counts": counts, "drops": drops, "latency_ms": latency}


def target_from_params(params: Mapping[str, Any]) -> OrbitTarget | PoseTarget:
    if params["target.mode"] == "pose":
        return PoseTarget(pose=tuple(params["target.pose"]))
    return OrbitTarget(
        yaw_deg=params["target.yaw_deg"],
        pitch_deg=params["target.pitch_deg"],
        forward_m=params["target.forward_m"],
        pivot_m=params["target.pivot_m"],
    )


class _TransportLogHandler(logging.Handler):
    """Hands the robot layer's warnings to the runtime's `log` callback (the node's ROS logger, augment-bag's console),
    so that they appear where the transport's own warnings do; its info messages stay in Python logging."""

    def __init__(self, log: Callable[[str], None]) -> None:
        super().__init__()
        self._log = log

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self._log(record.getMessage())
        elif (logger := logging.getLogger(record.name)).isEnabledFor(record.levelno):
            logger.handle(record)


def _robot_logger(log: Callable[[str], None]) -> logging.Logger:
    """A logger of one runtime's robot layer, outside logging's registry (each runtime has its own `log`)."""
    logger = logging.Logger("embody4d_ros.robot_layer")
    logger.addHandler(_TransportLogHandler(log))
    return logger


class _ErrorLog:
    """The logger interface `create_engine_with_fallback` reports through, on top of the runtime's `log` callback."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self._log = log

    def error(self, message: str, *args: Any) -> None:
        self._log("ERROR: " + message % args)


def engine_from_params(params: Mapping[str, Any], log: Callable[[str], None] = print) -> Engine:
    """The configured engine; with `engine_fallback`, the next one that starts (tensorrt → onnxruntime → torch → warp),
    each failure and the substitution reported at ERROR level, never silently."""
    # the warp engine has no weights; network engines fall back to the shipped ones when model_path is empty
    options = {"model_path": params["model_path"]} if params["model_path"] and params["engine"] != "warp" else {}
    return create_engine_with_fallback(
        params["engine"],
        params["engine_fallback"],
        _ErrorLog(log),
        force_engine_update=params["force_engine_update"],
        **options,
    )


def pad_resize(rgb: np.ndarray, size: int = 224) -> np.ndarray:
    """(H, W, 3) -> (size, size, 3): resize keeping the aspect ratio, then pad with black (openpi's convention)."""
    height, width = rgb.shape[:2]
    scale = size / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_AREA)
    out = np.zeros((size, size, 3), dtype=rgb.dtype)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    out[top : top + new_h, left : left + new_w] = resized
    return out


@dataclass
class _Job:
    frames: list[Frame]
    publish_from: int  # index of the first frame of this clip not published before (windows overlap)
    received_ns: int  # when the newest frame's last message arrived (wall clock)
    queued_s: float = 0.0  # time.perf_counter() when the job joined the engine queue


@dataclass
class _Prepared:
    """A job with its virtual view warped: what the prepare stage hands to the fill stage."""

    job: _Job
    view: VirtualView
    queued_s: float = 0.0  # time.perf_counter() when it was handed over


def _stacked(arrays: list[np.ndarray]) -> np.ndarray:
    """(T, ...) from T arrays; one array (image mode) as a view, without copying it on the prepare stage's path."""
    return arrays[0][None] if len(arrays) == 1 else np.stack(arrays)


# Image mode runs the worker as two stages, so that frame n+1's warp (numba kernels, which release the GIL) overlaps
# frame n's engine fill and publish. One prepared view waits between them; when the fill stage is behind, the
# prepare stage waits for it, so that frames queue (and beyond queue_size drop as engine_busy) before the warp, and
# no warped frame is thrown away.
HANDOFF_DEPTH = 1
Result = TypeVar("Result")


class VirtualCameraRuntime:
    """Messages in, virtual frames out: sync, a bounded engine queue / clip scheduling with drop-oldest, counters.

    Feed it with `on_color`, `on_depth` and `on_camera_info` from any thread: every message is counted on arrival
    (`color_in`, `depth_in`, `camera_info_in`) and colour and depth are paired by the SyncBuffer. Generation runs in
    `process_next` / `drain` (the caller's thread: bag tool, tests) or in the worker threads of `start`: in image
    mode a prepare stage (depth estimate, warp, robot layer) and a fill stage (engine, publish) connected by a
    hand-off of HANDOFF_DEPTH views; in clip mode one thread does both. Bad input is counted in `stats.drops`, warned
    about (throttled), and never raises.
    """

    def __init__(
        self,
        params: Mapping[str, Any],
        publish: Callable[[VirtualFrame], None],
        engine: Engine | None = None,
        depth_estimator: DepthEstimator | None = None,
        log: Callable[[str], None] = print,
        now_ns: Callable[[], int] = time.time_ns,
        on_pose: Callable[[np.ndarray], None] | None = None,
    ) -> None:
        self.params = dict(params)
        self.publish = publish
        self.engine = engine if engine is not None else engine_from_params(self.params, log)
        self.depth_estimator = depth_estimator
        if depth_estimator is None and self.params["depth.source"] != "sensor":
            self.depth_estimator = create_depth_estimator(
                self.params["depth.source"], self.params["depth.model_path"], self.params["depth.device"]
            )
        # a monocular estimate is scaled to the robot's rendered depth (model.depth_align) before the warp
        self.depth_alignment = StreamAlignment() if self.params["depth.sensor"] == "mono" else None
        self.now_ns = now_ns
        self.on_pose = on_pose
        self.target = target_from_params(self.params)
        self.stats = RuntimeStats()
        self.warnings = ThrottledLog(log)
        self.sync: SyncBuffer[Any] = SyncBuffer(
            int(self.params["sync_slop_s"] * 1e9),
            self.params["queue_size"],
            on_drop=lambda reason, n: self._reject(reason, _SYNC_DROPS[reason.split("_", 1)[1]], n),
        )
        self.clip_mode = self.params["mode"] == "clip"
        self.clip_length = self.params["clip_length"] if self.clip_mode else 1
        self._ring: deque[Frame] = deque(maxlen=self.clip_length)
        self._unpublished = 0  # frames in the ring not yet published
        # Frames wait here for the engine. Image mode: up to queue_size, so that input arriving in bursts (reliable
        # DDS delivers late fragments together) is not dropped while the engine keeps up on average; clip mode: one
        # clip (the next window replaces a waiting one)
        self._pending: deque[_Job] = deque(maxlen=1 if self.clip_mode else self.params["queue_size"])
        self._camera_info: tuple[np.ndarray, int, int] | None = None
        # pairs that came before the first camera_info (another topic, it may arrive later): used once it does
        self._awaiting_info: deque[tuple[Stamped[Any], Stamped[Any] | None, int]] = deque()
        self._last_stamp_ns: int | None = None
        self.T_dst_src: np.ndarray | None = None  # latched at the first usable frame: the virtual camera is static
        # the robot drawn from its model; fed by the transport through `robot_layer.feed_message`
        self.robot_layer: RobotLayer | None = None
        if self.params["robot.enable"] != "false":
            self.robot_layer = RobotLayer(
                robot_config_from_params(self.params),
                logger=_robot_logger(log),
                on_count=lambda outcome: self.stats.count(f"robot_{outcome}"),
            )
        self._lock = threading.Lock()
        # One condition per waiting stage, so that a notification wakes only the thread it concerns (a woken thread
        # takes the GIL, and on a loaded machine a core, from the others): the prepare stage waits for a job or for
        # room in the hand-off, the fill stage for a prepared view.
        self._prepare_wake = threading.Condition(self._lock)
        self._fill_wake = threading.Condition(self._lock)
        self._handoff: deque[_Prepared] = deque()  # image mode: warped views waiting for the fill stage
        self._workers: list[threading.Thread] = []
        self._running = False

    # ------------------------------------------------------------------------------------------------ inputs

    def on_camera_info(self, msg: Any) -> None:
        self.stats.count("camera_info_in")
        try:
            K = camera_info_to_K(msg)
        except ConversionError as exc:
            self._reject("bad_camera_info", str(exc))
            return
        with self._lock:
            self._camera_info = (K, int(msg.width), int(msg.height))
            waiting = list(self._awaiting_info)
            self._awaiting_info.clear()
        for color, depth, received in waiting:
            self._accept(color, depth, received)

    def on_color(self, msg: Any) -> None:
        received = self.now_ns()
        self.stats.count("color_in")
        stamp = stamp_to_ns(msg.header.stamp)
        # the transport's share of the latency (camera and DDS): stamp to the colour message reaching the node
        self.stats.record("receive", (received - stamp) / 1e6)
        if self.depth_estimator is not None:
            self._accept(Stamped(stamp, msg), None, received)
            return
        with self._lock:
            pairs = self.sync.add_color(stamp, msg)
        for color, depth in pairs:
            self._accept(color, depth, received)

    def on_depth(self, msg: Any) -> None:
        received = self.now_ns()
        self.stats.count("depth_in")
        if self.depth_estimator is not None:
            return
        with self._lock:
            pairs = self.sync.add_depth(stamp_to_ns(msg.header.stamp), msg)
        for color, depth in pairs:
            self._accept(color, depth, received)

    def on_synced(self, color: Any, depth: Any | None, camera_info: Any) -> None:
        """Colour, depth and camera_info already matched by the caller (augment-bag's RgbdSync, in storage order)."""
        received = self.now_ns()
        self.stats.count("color_in")
        if depth is not None:
            self.stats.count("depth_in")
        self.on_camera_info(camera_info)
        depth_stamped = None if depth is None else Stamped(stamp_to_ns(depth.header.stamp), depth)
        self._accept(Stamped(stamp_to_ns(color.header.stamp), color), depth_stamped, received)

    def on_lost(self, topic: str, count: int) -> None:
        """The transport reports `count` messages of `topic` ('color', 'depth', 'camera_info') lost before delivery."""
        self._reject(
            f"{topic}_lost",
            f"{count} {topic} message(s) lost in transport or overwritten in the reader's queue_size-deep queue "
            "(best-effort QoS, or the node busier than the input rate allows)",
            count,
        )

    def _reject(self, reason: str, message: str, count: int = 1) -> None:
        self.stats.drop(reason, count)
        self.warnings.warn(reason, f"dropping input ({reason}): {message}")

    def _accept(self, color: Stamped[Any], depth: Stamped[Any] | None, received_ns: int) -> None:
        """Convert and check one matched pair, then hand it to the scheduler."""
        with self._lock:
            camera_info = self._camera_info
            if camera_info is None:
                self._awaiting_info.append((color, depth, received_ns))
                overflow = len(self._awaiting_info) > self.params["queue_size"]
                if overflow:
                    self._awaiting_info.popleft()
        if camera_info is None:
            if overflow:
                self._reject(
                    "no_camera_info",
                    f"no valid camera_info on {self.params['camera_info_topic']} for "
                    f"{self.params['queue_size']} frames (queue_size); dropping the oldest",
                )
            return
        started = time.perf_counter()
        K, info_w, info_h = camera_info
        try:
            rgb = image_to_rgb(color.payload)
            depth_m = None if depth is None else image_to_depth_m(depth.payload)
        except ConversionError as exc:
            self._reject("bad_encoding", str(exc))
            return
        height, width = rgb.shape[:2]
        if (info_w, info_h) != (width, height):
            self._reject("size_mismatch", f"camera_info is {info_w}x{info_h} but the colour image is {width}x{height}")
            return
        if depth_m is not None:
            if depth_m.shape != (height, width):
                self._reject(
                    "size_mismatch",
                    f"depth {depth_m.shape[1]}x{depth_m.shape[0]} differs from colour "
                    f"{width}x{height}; subscribe to depth aligned to colour",
                )
                return
            if not np.any(depth_m > 0):
                self._reject("no_valid_depth", "depth image has no valid pixel (all 0, NaN or inf)")
                return
        with self._lock:  # colour and depth callbacks may run on different threads
            if self._last_stamp_ns is not None and color.stamp_ns <= self._last_stamp_ns:
                self._reject(
                    "stale_stamp", f"stamp {color.stamp_ns} is not newer than the last frame's {self._last_stamp_ns}"
                )
                return
            self._last_stamp_ns = color.stamp_ns
        frame = Frame(rgb=rgb, depth=depth_m, K=K, stamp_ns=color.stamp_ns, frame_id=str(color.payload.header.frame_id))
        self.stats.record("convert", (time.perf_counter() - started) * 1e3)
        self.stats.count("frames_in")
        self.submit(frame, received_ns)

    # -------------------------------------------------------------------------------------------- scheduling

    def submit(self, frame: Frame, received_ns: int | None = None) -> None:
        """Queue a frame for the engine (image mode) or schedule full windows (clip mode); a full queue drops the
        oldest waiting job, counted as engine_busy."""
        received_ns = self.now_ns() if received_ns is None else received_ns
        with self._lock:
            if self._ring and self._ring[-1].rgb.shape != frame.rgb.shape:
                # the camera changed resolution: a clip cannot mix sizes, start a new one
                self.stats.drop("size_changed", self._unpublished)
                self._ring.clear()
                self._unpublished = 0
            self._ring.append(frame)
            self._unpublished = min(self._unpublished + 1, self.clip_length)
            stride = self.clip_length - self.params["clip_overlap"] if self.clip_mode else 1
            if len(self._ring) < self.clip_length or self._unpublished < stride:
                return
            self._enqueue(_Job(list(self._ring), self.clip_length - self._unpublished, received_ns))
            self._unpublished = 0

    def clip_fill(self) -> tuple[int, int] | None:
        """In clip mode, (frames waiting for the next clip, frames that start it); None in image mode."""
        if not self.clip_mode:
            return None
        with self._lock:
            if len(self._ring) < self.clip_length:
                return len(self._ring), self.clip_length
            return self._unpublished, self.clip_length - self.params["clip_overlap"]

    def flush(self) -> None:
        """End of stream (bag tool): schedule the frames not yet covered by a full clip window."""
        with self._lock:
            if self._unpublished:
                frames = list(self._ring)
                self._enqueue(_Job(frames, len(frames) - self._unpublished, self.now_ns()))
                self._unpublished = 0

    def _enqueue(self, job: _Job) -> None:
        if len(self._pending) == self._pending.maxlen:
            old = self._pending[0]
            self.stats.drop("engine_busy", len(old.frames) - old.publish_from)
            self.warnings.warn(
                "engine_busy",
                f"the engine is slower than the input: {len(self._pending)} job(s) wait for it; dropping the oldest",
            )
        job.queued_s = time.perf_counter()
        self._pending.append(job)  # the deque's maxlen drops the oldest
        self._prepare_wake.notify()

    def process_next(self) -> int:
        """Generate and publish the waiting job, if any, in the caller's thread; returns frames published."""
        with self._lock:
            if not self._pending:
                return 0
            job = self._pending.popleft()
        return self._run(job)

    def drain(self) -> int:
        published = 0
        while count := self.process_next():
            published += count
        return published

    def start(self) -> None:
        """Run generation in worker threads (live transports): two stages in image mode, one in clip mode."""
        if self._workers:
            return
        self._running = True
        stages = [("virtual_camera_worker", self._prepare_loop)]  # clip mode: this thread also fills and publishes
        if not self.clip_mode:
            stages = [("virtual_camera_prepare", self._prepare_loop), ("virtual_camera_fill", self._fill_loop)]
        self._workers = [threading.Thread(target=loop, name=name, daemon=True) for name, loop in stages]
        for worker in self._workers:
            worker.start()

    def stop(self) -> None:
        """Let each stage finish the frame it is on, join them, and count the frames still waiting as `shutdown`."""
        with self._lock:
            self._running = False
            self._prepare_wake.notify_all()
            self._fill_wake.notify_all()
        for worker in self._workers:
            worker.join()
        self._workers = []
        with self._lock:
            jobs = list(self._pending) + [prepared.job for prepared in self._handoff]
            self._pending.clear()
            self._handoff.clear()
        if unpublished := sum(len(job.frames) - job.publish_from for job in jobs):
            self.stats.drop("shutdown", unpublished)
        if self.robot_layer is not None:  # the last hand-eye check's warning still reaches the log
            self.robot_layer.hand_eye.wait(timeout_s=10.0)

    def _prepare_loop(self) -> None:
        while True:
            with self._lock:
                while self._running and not self._pending:
                    self._prepare_wake.wait()
                if not self._running:
                    return
                job = self._pending.popleft()
            prepared = self._prepare(job)
            if prepared is None:
                continue
            if self.clip_mode:  # one clip at a time: the next window may still replace a waiting one
                self._finish(prepared)
                continue
            with self._lock:
                if len(self._handoff) >= HANDOFF_DEPTH:
                    self.stats.count("fill_stage_busy")  # back-pressure: frames now wait in the engine queue
                while self._running and len(self._handoff) >= HANDOFF_DEPTH:
                    self._prepare_wake.wait()
                prepared.queued_s = time.perf_counter()
                self._handoff.append(prepared)  # counted by stop() when the fill stage is gone
                self._fill_wake.notify()
                if not self._running:
                    return

    def _fill_loop(self) -> None:
        while True:
            with self._lock:
                while self._running and not self._handoff:
                    self._fill_wake.wait()
                if not self._running:
                    return
                prepared = self._handoff.popleft()
                self._prepare_wake.notify()  # room for the prepare stage
            self.stats.record("handoff_wait", (time.perf_counter() - prepared.queued_s) * 1e3)
            self._finish(prepared)

    # ------------------------------------------------------------------------------------------- generation

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        return self.params["output_width"] or width, self.params["output_height"] or height

    def _run(self, job: _Job) -> int:
        """Both stages of one job in the caller's thread; returns frames published."""
        prepared = self._prepare(job)
        return 0 if prepared is None else self._finish(prepared)

    def _guarded(self, stage: Callable[..., Result], *args: Any) -> Result | None:
        """Run one generation stage; a failure is counted and warned about, and the node keeps serving."""
        try:
            return stage(*args)
        except (GeometryError, EngineError, DepthError) as exc:
            self._reject("generation_failed", str(exc))
        except Exception as exc:  # a failing engine must not take the node down; keep serving later frames
            self._reject("engine_error", f"{type(exc).__name__}: {exc}")
        return None

    def _prepare(self, job: _Job) -> _Prepared | None:
        """Stage A: the job's virtual view (depth estimate, warp, robot layer); None when it failed (counted)."""
        self.stats.record("queue_wait", (time.perf_counter() - job.queued_s) * 1e3)
        view = self._guarded(self._virtual_view, job.frames)
        return None if view is None else _Prepared(job, view)

    def _finish(self, prepared: _Prepared) -> int:
        """Stage B: the engine fills the view, then the frames not published before go out; returns their number."""
        job = prepared.job
        outputs = self._guarded(self._fill, job.frames, prepared.view)
        if outputs is None:
            return 0
        published = 0
        for frame in outputs[job.publish_from :]:
            started = time.perf_counter()
            self.publish(frame)
            done = self.now_ns()
            self.stats.record("publish", (time.perf_counter() - started) * 1e3)
            self.stats.record("stamp_to_publish", (done - frame.stamp_ns) / 1e6)
            published += 1
        self.stats.record("added", (self.now_ns() - job.received_ns) / 1e6)
        self.stats.count("frames_out", published)
        return published

    def _align_depth(self, depth: np.ndarray, K: np.ndarray, frame: Frame) -> np.ndarray:
        """Mono depth (T, H, W) scaled by the running fit to the robot's rendered depth at `frame` (the newest)."""
        assert self.depth_alignment is not None
        anchors = None
        if self.robot_layer is not None:
            anchors = self.robot_layer.source_depth(K, frame.frame_id, frame.stamp_ns, depth.shape[1:])
        self.stats.count("depth_aligned" if self.depth_alignment.update(depth[-1], anchors) else "depth_not_fitted")
        aligned = self.depth_alignment.apply(depth)
        if aligned is None:
            self.warnings.warn(
                "depth_unaligned",
                "depth.sensor is mono but the robot has not been drawn yet (robot layer off, or no robot description, "
                "joint states or TF): the estimate's scale is used as it is",
            )
        return depth if aligned is None else aligned

    def _virtual_view(self, frames: list[Frame]) -> VirtualView:
        rgb = _stacked([f.rgb for f in frames])
        K = frames[-1].K
        started = time.perf_counter()
        if self.depth_estimator is not None:
            depth = self.depth_estimator.estimate(rgb)
            self.stats.record("depth", (time.perf_counter() - started) * 1e3)
        else:  # without an estimator the sync buffer pairs every frame with its depth
            depth = _stacked([f.depth for f in frames if f.depth is not None])
        height, width = rgb.shape[1:3]
        if self.depth_alignment is not None:
            depth = self._align_depth(depth, K, frames[-1])
        out_w, out_h = self.output_size(width, height)
        started = time.perf_counter()
        # the first usable frame fixes the viewpoint (orbit pivot included): the virtual camera is a static frame
        target = self.target if self.T_dst_src is None else self.T_dst_src
        view = None
        if self.robot_layer is not None:
            view = self._robot_view(frames, rgb, depth, K, resolve_target(target, depth, K, 1)[0], (out_h, out_w))
        if view is None:  # no robot layer, or no frame has its joint states and TF (counted by the layer)
            settings = warp_settings(self.params["depth.sensor"], K, width)
            view = prepare_virtual_view(
                rgb, depth, K, target, out_hw=(out_h, out_w), settings=settings, threads=self.params["warp_threads"]
            )
        self.stats.record("warp", (time.perf_counter() - started) * 1e3)
        if self.T_dst_src is None:
            self.T_dst_src = view.T_dst_src[0]
            if self.on_pose is not None:
                self.on_pose(matrix_to_pose(invert_transform(self.T_dst_src)))
        return view

    def _fill(self, frames: list[Frame], view: VirtualView) -> list[VirtualFrame]:
        started = time.perf_counter()
        images = self.engine.generate(view.request)
        self.stats.record("engine", (time.perf_counter() - started) * 1e3)
        frame_id = self.params["virtual_frame_id"]
        return [
            VirtualFrame(np.asarray(img, dtype=np.uint8), view.K_dst, f.stamp_ns, frame_id, f.frame_id)
            for img, f in zip(images, frames)
        ]

    def _robot_view(
        self,
        frames: list[Frame],
        rgb: np.ndarray,
        depth: np.ndarray,
        K: np.ndarray,
        T_dst_src: np.ndarray,
        out_hw: tuple[int, int],
    ) -> VirtualView | None:
        """The robot-aware view of the frames, each drawn with the joint state at its own stamp (a clip spans many
        joint-state messages); a frame the layer cannot draw is warped the plain way. None when no frame is drawn."""
        assert self.robot_layer is not None
        settings = warp_settings(self.params["depth.sensor"], K, rgb.shape[2])
        views = [
            self.robot_layer.virtual_view(
                rgb[i], depth[i], K, frame.frame_id, frame.stamp_ns, T_dst_src, out_hw, settings=settings
            )
            for i, frame in enumerate(frames)
        ]
        if all(view is None for view in views):
            return None
        if len(views) == 1:
            return views[0]
        return stack_views(
            [
                view
                if view is not None
                else prepare_virtual_view(
                    rgb[i],
                    depth[i],
                    K,
                    T_dst_src,
                    out_hw=out_hw,
                    settings=settings,
                    threads=self.params["warp_threads"],
                )
                for i, view in enumerate(views)
            ]
        )
