"""Thread-CPU time per stage of the robot layer, for the benchmarks (`bench/bench_robot.py`, `gpu_check_case`).

The layer's own code marks its stages (``with stage("rasterise"): ...``); that costs a few hundred nanoseconds and
records nothing unless a :class:`StageTimes` is being collected on the calling thread. Stages nest: a stage's time
excludes its inner stages', and its name is the path of the stages around it ("virtual render/shade"), so the
table adds up to the whole. Thread CPU (not wall time) is what a stage costs on a machine shared with other jobs;
the layer's kernels are serial, so their thread CPU is all their CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import threading
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Iterator, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:
    from .model import RobotModel

_local = threading.local()


@dataclasses.dataclass
class _Open:
    """A stage being timed: its path, its start (thread CPU ns) and the time of its inner stages so far."""

    path: str
    start_ns: int
    inner_ns: int = 0


class StageTimes:
    """Thread-CPU nanoseconds per stage path, and how many times each ran, while :meth:`collect` is active."""

    def __init__(self) -> None:
        self.ns: defaultdict[str, int] = defaultdict(int)
        self.calls: defaultdict[str, int] = defaultdict(int)
        self._stack: list[_Open] = []

    @contextlib.contextmanager
    def collect(self) -> Iterator["StageTimes"]:
        previous = getattr(_local, "times", None)
        _local.times = self
        try:
            yield self
        finally:
            _local.times = previous

    def ms(self, per: int = 1) -> dict[str, float]:
        """Milliseconds per stage path, divided by ``per`` (e.g. the number of frames)."""
        return {path: ns / 1e6 / per for path, ns in self.ns.items()}


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Count the enclosed code's thread CPU under ``name`` (nested in the stages around it) when collecting."""
    times: StageTimes | None = getattr(_local, "times", None)
    if times is None:
        yield
        return
    entry = _Open(f"{times._stack[-1].path}/{name}" if times._stack else name, time.thread_time_ns())
    times._stack.append(entry)
    try:
        yield
    finally:
        times._stack.pop()
        spent = time.thread_time_ns() - entry.start_ns
        times.ns[entry.path] += spent - entry.inner_ns
        times.calls[entry.path] += 1
        if times._stack:
            times._stack[-1].inner_ns += spent


@dataclasses.dataclass(frozen=True)
class ProfileFrame:
    """One source frame of a profiling run: rgb (H, W, 3) uint8, depth (H, W) float32 metres, joint positions."""

    rgb: np.ndarray
    depth: np.ndarray
    positions: Mapping[str, float]


def profile_robot_layer(
    robot: "RobotModel",
    frames: Sequence[ProfileFrame],
    K_src: np.ndarray,
    T_cam_root: np.ndarray,
    K_dst: np.ndarray,
    T_dst_src: np.ndarray,
    repeats: int,
    hand_eye_every: int = 30,
) -> tuple[dict[str, float], float]:
    """Thread-CPU ms per frame of each stage of the robot layer, and the median wall ms per frame.

    Runs what `embody4d_ros.robot_layer.RobotLayer` does per frame (source render, virtual render, the memory's
    background, the composition, the memory update, the hand-eye check every ``hand_eye_every`` frames) over
    ``frames`` in turn, ``repeats`` times after one warm-up pass (the joints change every frame, as when the arm
    moves, so nothing is reused from the frame before unless the model caches it).
    """
    from .calibration import measure_hand_eye_offset
    from .compose import compose_robot_view
    from .scene_memory import StaticSceneMemory

    height, width = frames[0].depth.shape
    memory = StaticSceneMemory()
    T_dst_root = T_dst_src @ T_cam_root
    times, walls, count = StageTimes(), [], 0

    def one(frame: ProfileFrame, index: int) -> None:
        with stage("source render"):
            robot_src = robot.render(frame.positions, K_src, T_cam_root, height, width, with_colour=False, coarse=True)
        with stage("virtual render"):
            robot_dst = robot.render(frame.positions, K_dst, T_dst_root, height, width)
        with stage("scene memory fill"):
            memory_rgb, memory_depth = memory.background()
        with stage("composition"):
            compose_robot_view(
                frame.rgb,
                frame.depth,
                K_src,
                K_dst,
                T_dst_src,
                (height, width),
                robot_src,
                robot_dst,
                robot.part_link,
                memory_rgb=memory_rgb,
                memory_depth=memory_depth,
            )
        with stage("scene memory update"):
            memory.update(frame.rgb, frame.depth, robot_src.mask, T_cam_root)
        if hand_eye_every > 0 and index % hand_eye_every == 0:
            with stage("hand-eye check"):
                measure_hand_eye_offset(robot_src.depth, robot_src.mask, frame.depth, K_src)

    for frame in frames:  # warm-up: compiled kernels load, the memory fills
        one(frame, 1)
    with times.collect():
        for _ in range(repeats):
            for frame in frames:
                start = time.perf_counter()
                one(frame, count)
                walls.append(time.perf_counter() - start)
                count += 1
    return times.ms(per=count), statistics.median(walls) * 1e3
