"""A TF buffer held by the runtime itself (augment-bag and the DDS transport have no tf2), with tf2's semantics.

Frames form a tree: each child frame has one parent, set by `/tf_static` (valid at every time) or `/tf` (time-stamped;
a history of `cache_s` seconds is kept per child). `lookup(target, source, stamp_ns)` composes the chain through the
tree and returns `T_target_source` (maps points from `source` into `target`, DESIGN.md convention), with each
time-stamped link interpolated at the stamp (linear translation, slerp rotation). As in tf2, stamp 0 means "the latest
time every time-stamped link of the chain has", and a stamp outside a link's history raises; `tolerance_ns` lets a
stamp that far outside use the nearest transform instead (a late `/tf` publisher). Frame names lose a leading '/'.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np

from model.geometry import matrix_to_quaternion, quaternion_to_matrix


class TfError(LookupError):
    """A transform the buffer cannot give (unknown frame, frames not connected, stamp outside the history)."""


def _slerp(q0: np.ndarray, q1: np.ndarray, t: float) -> np.ndarray:
    dot = float(q0 @ q1)
    if dot < 0.0:  # the shorter way round
        q1, dot = -q1, -dot
    if dot > 0.9995:
        q = q0 + t * (q1 - q0)
        return q / np.linalg.norm(q)
    angle = np.arccos(dot)
    return (np.sin((1 - t) * angle) * q0 + np.sin(t * angle) * q1) / np.sin(angle)


@dataclass
class _Link:
    """The parent of one child frame and its transforms T_parent_child over time."""

    parent: str
    static: bool
    stamps: list[int] = field(default_factory=list)
    translations: list[np.ndarray] = field(default_factory=list)
    quaternions: list[np.ndarray] = field(default_factory=list)


def _frame(name: str) -> str:
    return name[1:] if name.startswith("/") else name


class TfBuffer:
    """Static and time-stamped transforms; lookups composed through the frame tree (see the module docstring)."""

    def __init__(self, cache_s: float = 10.0, tolerance_ns: int = 0) -> None:
        self.cache_ns = int(cache_s * 1e9)
        self.tolerance_ns = int(tolerance_ns)
        self._links: dict[str, _Link] = {}

    def set_transform(
        self, parent: str, child: str, T_parent_child: np.ndarray, stamp_ns: int = 0, static: bool = False
    ) -> None:
        """Add one transform (a `geometry_msgs/TransformStamped`: header.frame_id = parent, child_frame_id = child).

        A child re-parented replaces its history (tf2 allows one parent per frame). Out-of-order stamps are
        accepted; transforms older than the cache window behind the newest are forgotten.
        """
        parent, child = _frame(parent), _frame(child)
        if parent == child:
            raise TfError(f"transform from '{child}' to itself")
        T = np.asarray(T_parent_child, float)
        link = self._links.get(child)
        if link is None or link.parent != parent or link.static != static:
            link = self._links[child] = _Link(parent, static)
        quaternion, translation = matrix_to_quaternion(T[:3, :3]), T[:3, 3].copy()
        if static:
            link.stamps, link.translations, link.quaternions = [0], [translation], [quaternion]
            return
        at = bisect.bisect_left(link.stamps, stamp_ns)
        if at < len(link.stamps) and link.stamps[at] == stamp_ns:
            link.translations[at], link.quaternions[at] = translation, quaternion
        else:
            link.stamps.insert(at, stamp_ns)
            link.translations.insert(at, translation)
            link.quaternions.insert(at, quaternion)
        expired = bisect.bisect_left(link.stamps, link.stamps[-1] - self.cache_ns)
        if expired:
            del link.stamps[:expired], link.translations[:expired], link.quaternions[:expired]

    def clear(self) -> None:
        self._links.clear()

    def frames(self) -> list[str]:
        """Every frame the buffer knows (children and parents)."""
        return sorted(set(self._links) | {link.parent for link in self._links.values()})

    def _chain(self, frame: str) -> list[str]:
        """``frame`` and its ancestors up to the root of its tree."""
        chain = [frame]
        while chain[-1] in self._links:
            chain.append(self._links[chain[-1]].parent)
            if len(chain) > len(self._links) + 1:
                raise TfError(f"the TF tree has a loop through '{frame}'")
        return chain

    def _at(self, child: str, stamp_ns: int) -> np.ndarray:
        """T_parent_child of one link at ``stamp_ns``."""
        link = self._links[child]
        T = np.eye(4)
        stamps = link.stamps
        if link.static or len(stamps) == 1 and stamps[0] == stamp_ns:
            index = 0
        else:
            index = bisect.bisect_left(stamps, stamp_ns)
            if index < len(stamps) and stamps[index] == stamp_ns:
                pass
            elif 0 < index < len(stamps):
                t = (stamp_ns - stamps[index - 1]) / (stamps[index] - stamps[index - 1])
                T[:3, :3] = quaternion_to_matrix(_slerp(link.quaternions[index - 1], link.quaternions[index], t))
                T[:3, 3] = (1 - t) * link.translations[index - 1] + t * link.translations[index]
                return T
            else:
                index = 0 if index == 0 else len(stamps) - 1
                gap = abs(stamps[index] - stamp_ns)
                if gap > self.tolerance_ns:
                    when = "before the oldest" if stamp_ns < stamps[0] else "after the newest"
                    raise TfError(
                        f"lookup of '{link.parent}' -> '{child}' at {stamp_ns * 1e-9:.3f} s is "
                        f"{gap * 1e-9:.3f} s {when} transform; extrapolation is not done (tolerance "
                        f"{self.tolerance_ns * 1e-9:.3f} s)"
                    )
        T[:3, :3] = quaternion_to_matrix(link.quaternions[index])
        T[:3, 3] = link.translations[index]
        return T

    def lookup(self, target: str, source: str, stamp_ns: int = 0) -> np.ndarray:
        """T_target_source (4, 4) at ``stamp_ns`` (0: the latest common time of the chain's time-stamped links).

        Raises:
            TfError naming the unknown frame, the two unconnected trees, or the link whose history lacks the stamp.
        """
        target, source = _frame(target), _frame(source)
        known = self.frames()
        for frame in (target, source):
            if frame not in known:
                raise TfError(f"frame '{frame}' does not exist in the TF buffer (known: {', '.join(known) or 'none'})")
        up_source, up_target = self._chain(source), self._chain(target)
        common = next((frame for frame in up_source if frame in up_target), None)
        if common is None:
            raise TfError(
                f"frames '{source}' and '{target}' are not connected: their trees have roots "
                f"'{up_source[-1]}' and '{up_target[-1]}'; a transform between the two trees is missing"
            )
        source_links = up_source[: up_source.index(common)]
        target_links = up_target[: up_target.index(common)]
        if stamp_ns == 0:
            latest = [self._links[c].stamps[-1] for c in source_links + target_links if not self._links[c].static]
            stamp_ns = min(latest) if latest else 0
        T_common_source = np.eye(4)
        for child in reversed(source_links):  # from the common ancestor down to the source
            T_common_source = T_common_source @ self._at(child, stamp_ns)
        T_common_target = np.eye(4)
        for child in reversed(target_links):
            T_common_target = T_common_target @ self._at(child, stamp_ns)
        return np.linalg.solve(T_common_target, T_common_source)


def camera_from_root(
    tf: TfBuffer, camera_frame: str, root_link: str, stamp_ns: int, override_T_camera_root: np.ndarray | None = None
) -> np.ndarray:
    """T_camera_root: the camera's optical frame from the URDF's root link, from TF unless a parameter overrides it
    (a hand-eye calibration given as a pose, for setups that publish no TF)."""
    if override_T_camera_root is not None:
        return np.asarray(override_T_camera_root, float)
    return tf.lookup(camera_frame, root_link, stamp_ns)
