"""Thread-CPU time per stage of the robot layer, for the benchmarks (`model.robot.profiling`, `bench/bench_robot.py`).

The layer's own code marks its stages (``with stage("rasterise"): ...``); that costs a few hundred nanoseconds and
records nothing unless a :class:`StageTimes` is being collected on the calling thread. Stages nest: a stage's time
excludes its inner stages', and its name is the path of the stages around it ("virtual render/shade"), so the
table adds up to the whole. Thread CPU (not wall time) is what a stage costs on a machine shared with other jobs;
the layer's kernels are serial, so their thread CPU is all their CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections import defaultdict
from typing import Iterator

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
