"""The ROS-free core of the virtual camera: synchronisation, scheduling, drop policy, engine call, counters.

Transports (the rclpy node, the DDS transport, the bag tool) feed messages in and receive `VirtualFrame`s out;
nothing here imports ROS, so every policy is tested with plain pytest.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

Payload = TypeVar("Payload")


@dataclass
class Stamped(Generic[Payload]):
    stamp_ns: int
    payload: Payload


class SyncBuffer(Generic[Payload]):
    """Approximate time synchroniser of colour and depth: pairs whose stamps differ by at most `slop_ns`.

    Each stream holds at most `queue_size` messages (the oldest goes first), so memory stays bounded under any
    burst. Colour stamps must increase: a colour older than or equal to the last emitted pair is rejected.
    Dropped messages are counted by reason in `drops` for the caller's diagnostics.
    """

    def __init__(self, slop_ns: int, queue_size: int) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.slop_ns = int(slop_ns)
        self.color: deque[Stamped[Payload]] = deque()
        self.depth: deque[Stamped[Payload]] = deque()
        self.queue_size = queue_size
        self.last_emitted_ns: int | None = None
        self.drops: dict[str, int] = {}

    def _drop(self, reason: str, count: int = 1) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + count

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
