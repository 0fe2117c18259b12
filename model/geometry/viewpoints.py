"""Target viewpoints (docs/DESIGN.md contract 2): an orbit about the source line of sight, an explicit pose, and the
random sampler of the paper's LIBERO protocol for policy-training augmentation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from model.geometry.base import GeometryError
from model.geometry.camera import check_intrinsics, invert_transform, pose_to_matrix, rotation_x, rotation_y


@dataclass
class OrbitTarget:
    """Virtual camera orbiting the source camera's line of sight (docs/DESIGN.md contract 2).

    yaw_deg > 0 moves the camera to the right, pitch_deg > 0 moves it up, both around a pivot `pivot_m` metres along
    the source optical axis while keeping the pivot in view; forward_m > 0 then moves it towards the scene along its
    own optical axis. pivot_m = 0 uses the median valid depth around the principal point.
    """

    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    forward_m: float = 0.0
    pivot_m: float = 0.0


@dataclass
class PoseTarget:
    """Virtual optical frame expressed in the source optical frame: [x, y, z, qx, qy, qz, qw]."""

    pose: Sequence[float] = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)


def centre_depth(depth: np.ndarray, K: np.ndarray, window_fraction: float = 0.25) -> float:
    """Median valid depth (m) in a window of `window_fraction` of the image size around the principal point."""
    depth = np.asarray(depth)
    K = check_intrinsics(K)
    h, w = depth.shape[-2:]
    cx = int(round(min(max(K[0, 2], 0), w - 1)))
    cy = int(round(min(max(K[1, 2], 0), h - 1)))
    half_w, half_h = max(1, int(w * window_fraction / 2)), max(1, int(h * window_fraction / 2))
    patch = depth[..., max(0, cy - half_h) : cy + half_h + 1, max(0, cx - half_w) : cx + half_w + 1]
    valid = patch[np.isfinite(patch) & (patch > 0)]
    if valid.size == 0:
        raise GeometryError(
            "orbit target with pivot_m=0 needs valid depth near the image centre, but none was found; "
            "set target.pivot_m explicitly"
        )
    return float(np.median(valid))


def target_transform(
    target: OrbitTarget | PoseTarget, depth: np.ndarray | None = None, K: np.ndarray | None = None
) -> np.ndarray:
    """T_dst_src (4, 4): maps points from the source optical frame into the virtual optical frame.

    depth (H, W) or (T, H, W) in metres and K (3, 3) are needed only for an orbit with pivot_m = 0 and a non-zero
    yaw or pitch (the pivot is then the median depth around the principal point).
    """
    if isinstance(target, PoseTarget):
        return invert_transform(pose_to_matrix(target.pose))
    if not isinstance(target, OrbitTarget):
        raise GeometryError(f"target must be an OrbitTarget or a PoseTarget, got {type(target).__name__}")
    values = (target.yaw_deg, target.pitch_deg, target.forward_m, target.pivot_m)
    if not all(math.isfinite(v) for v in values):
        raise GeometryError(f"orbit target values must be finite, got {target}")
    if target.pivot_m < 0:
        raise GeometryError(f"pivot_m must be >= 0 (0 = centre depth), got {target.pivot_m}")
    pivot = target.pivot_m
    rotates = target.yaw_deg != 0.0 or target.pitch_deg != 0.0
    if rotates and pivot == 0.0:
        if depth is None or K is None:
            raise GeometryError(
                "orbit target with pivot_m=0 needs the depth image and K to find the pivot; pass them or set pivot_m"
            )
        pivot = centre_depth(depth, K)
    # The optical y axis points down, so turning the camera right about the pivot is a negative rotation about y,
    # and moving it up is a negative rotation about x. Pitch is applied in the yawed frame.
    R = rotation_y(-math.radians(target.yaw_deg)) @ rotation_x(-math.radians(target.pitch_deg))
    pivot_point = np.array([0.0, 0.0, pivot])
    centre = pivot_point + R @ (-pivot_point) + R[:, 2] * target.forward_m
    T_src_dst = np.eye(4)
    T_src_dst[:3, :3] = R
    T_src_dst[:3, 3] = centre
    return invert_transform(T_src_dst)


# The six perturbations of the paper's LIBERO protocol.
VIEW_DIRECTIONS = ("left", "right", "up", "down", "forward", "backward")


@dataclass
class ViewpointSampler:
    """Random target viewpoints for policy-training augmentation, following the paper's LIBERO protocol.

    Each sample perturbs the view in one of six directions, chosen uniformly: yaw left/right, pitch up/down
    (rotations about the pivot, degrees) or translation forward/backward (metres), with the magnitude drawn
    uniformly from the direction's range. The paper's numeric ranges were lost in the text extraction; the defaults
    here are moderate values that the warp handles well; set them to your setup.
    """

    yaw_range_deg: tuple[float, float] = (5.0, 30.0)
    pitch_range_deg: tuple[float, float] = (5.0, 20.0)
    translation_range_m: tuple[float, float] = (0.05, 0.20)
    pivot_m: float = 0.0
    directions: tuple[str, ...] = VIEW_DIRECTIONS

    def __post_init__(self) -> None:
        unknown = set(self.directions) - set(VIEW_DIRECTIONS)
        if unknown or not self.directions:
            raise GeometryError(f"directions must be a non-empty subset of {VIEW_DIRECTIONS}, got {self.directions}")
        for name in ("yaw_range_deg", "pitch_range_deg", "translation_range_m"):
            low, high = getattr(self, name)
            if not (0 <= low <= high):
                raise GeometryError(f"{name} must be (low, high) with 0 <= low <= high, got {(low, high)}")

    def sample(self, rng: np.random.Generator) -> OrbitTarget:
        direction = self.directions[int(rng.integers(len(self.directions)))]
        if direction in ("left", "right"):
            magnitude = rng.uniform(*self.yaw_range_deg)
            return OrbitTarget(yaw_deg=magnitude if direction == "right" else -magnitude, pivot_m=self.pivot_m)
        if direction in ("up", "down"):
            magnitude = rng.uniform(*self.pitch_range_deg)
            return OrbitTarget(pitch_deg=magnitude if direction == "up" else -magnitude, pivot_m=self.pivot_m)
        magnitude = rng.uniform(*self.translation_range_m)
        return OrbitTarget(forward_m=magnitude if direction == "forward" else -magnitude, pivot_m=self.pivot_m)
