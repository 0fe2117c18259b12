"""Joint states at a camera frame's stamp: `/joint_states` arrives at its own rate (tens of Hz), not per frame.

Each joint keeps its own short history (messages may carry a subset of the joints: an arm and its gripper are often
published apart). A lookup interpolates linearly between the samples around the stamp; a stamp past the newest (or
before the oldest) sample uses that sample only if it lies within `slop_ns`, otherwise the joint is stale and the
frame should be made without the robot layer (the caller counts it in its diagnostics). Samples more than
`max_gap_ns` apart are not interpolated across (the publisher stopped in between): the nearer one within the slop
serves, or the joint is stale. The history spans `window_ns` of stamps (like tf2's cache), whatever the publisher's
rate: clip mode looks up states a whole clip back.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class JointLookup:
    """Joint positions at a stamp: ``positions`` for the joints found, ``missing`` (never received) and ``stale``
    (nothing within the slop) for the others; ``stale_by_ns``: how far the nearest sample of a stale joint is from the
    stamp (the largest over them; positive: the samples are older)."""

    positions: dict[str, float]
    missing: list[str]
    stale: list[str]
    stale_by_ns: int = 0

    @property
    def ok(self) -> bool:
        return not self.missing and not self.stale

    def reason(self) -> str:
        """Why the robot layer cannot draw this frame ('' when it can)."""
        parts = []
        if self.missing:
            parts.append(f"no joint state for {', '.join(self.missing[:4])}{' ...' if len(self.missing) > 4 else ''}")
        if self.stale:
            when = "older" if self.stale_by_ns > 0 else "newer"
            parts.append(
                f"stale joint state for {', '.join(self.stale[:4])}{' ...' if len(self.stale) > 4 else ''} "
                f"(the nearest is {abs(self.stale_by_ns) / 1e9:.3f} s {when} than the frame; check that the robot "
                "still publishes and that it stamps with the camera's clock)"
            )
        return "; ".join(parts)


class JointStateBuffer:
    """Time-indexed joint positions (see the module docstring): per joint, the samples within ``window_ns`` of its
    newest, at most ``history`` of them (a bound on memory for a publisher far faster than 1 kHz)."""

    def __init__(
        self, slop_ns: int, window_ns: int = 10_000_000_000, history: int = 20_000, max_gap_ns: int = 1_000_000_000
    ) -> None:
        self.slop_ns = int(slop_ns)
        self.window_ns = int(window_ns)
        self.max_gap_ns = int(max_gap_ns)
        self.history = int(history)
        self._stamps: dict[str, deque[int]] = {}
        self._values: dict[str, deque[float]] = {}

    def add(self, stamp_ns: int, names: Sequence[str], positions: Sequence[float]) -> None:
        """Add one `sensor_msgs/JointState` (header stamp, name, position). Samples older than a joint's newest are
        inserted in order; names without a position are ignored."""
        for name, value in zip(names, positions):
            stamps = self._stamps.setdefault(name, deque(maxlen=self.history))
            values = self._values.setdefault(name, deque(maxlen=self.history))
            if not stamps or stamp_ns > stamps[-1]:
                stamps.append(stamp_ns)
                values.append(float(value))
                while stamps[0] < stamp_ns - self.window_ns:
                    stamps.popleft()
                    values.popleft()
                continue
            if stamp_ns < stamps[-1] - self.window_ns:
                continue  # older than the window: it would be dropped at the next sample anyway
            at = bisect.bisect_left(stamps, stamp_ns)
            if at < len(stamps) and stamps[at] == stamp_ns:
                values[at] = float(value)
            elif len(stamps) < self.history:  # a full history drops late samples rather than newer ones
                stamps.insert(at, stamp_ns)
                values.insert(at, float(value))

    def covers(self, stamp_ns: int, names: Sequence[str]) -> bool:
        """Whether every joint of ``names`` has a sample at or after ``stamp_ns`` (a lookup there interpolates)."""
        return all(name in self._stamps and self._stamps[name][-1] >= stamp_ns for name in names)

    def lookup(self, stamp_ns: int, names: Sequence[str]) -> JointLookup:
        """Positions of ``names`` at ``stamp_ns``."""
        positions, missing, stale, stale_by_ns = {}, [], [], 0
        for name in names:
            stamps = self._stamps.get(name)
            if not stamps:
                missing.append(name)
                continue
            values = self._values[name]  # filled together with the stamps
            at = bisect.bisect_left(stamps, stamp_ns)
            if at < len(stamps) and stamps[at] == stamp_ns:
                positions[name] = values[at]
            elif 0 < at < len(stamps) and stamps[at] - stamps[at - 1] <= self.max_gap_ns:
                t = (stamp_ns - stamps[at - 1]) / (stamps[at] - stamps[at - 1])
                positions[name] = (1 - t) * values[at - 1] + t * values[at]
            else:
                around = [i for i in (at - 1, at) if 0 <= i < len(stamps)]
                nearest = min(around, key=lambda i: abs(stamps[i] - stamp_ns))
                if abs(stamps[nearest] - stamp_ns) <= self.slop_ns:
                    positions[name] = values[nearest]
                else:
                    stale.append(name)
                    stale_by_ns = max(stale_by_ns, stamp_ns - stamps[nearest], key=abs)
        return JointLookup(positions, missing, stale, stale_by_ns)
