"""Camera model and rigid transforms: pinhole intrinsics, 4x4 transforms, quaternions and poses (docs/DESIGN.md
contract 1 conventions: ROS optical frames, `T_a_b` maps points from frame b into frame a, K in pixels with pixel
centres at integer coordinates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from model.geometry.base import GeometryError

# ----------------------------------------------------------------------------------------------------- intrinsics


def check_intrinsics(K: np.ndarray, name: str = "K") -> np.ndarray:
    """Return K as a (3, 3) float64 array or raise GeometryError if it is not a finite, invertible pinhole matrix."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise GeometryError(f"{name} must be a 3x3 intrinsics matrix, got shape {K.shape}")
    if not np.all(np.isfinite(K)):
        raise GeometryError(f"{name} has non-finite entries: {K.tolist()}")
    if not np.allclose(K[2], [0.0, 0.0, 1.0]):
        raise GeometryError(f"{name} last row must be [0, 0, 1], got {K[2].tolist()}")
    if abs(K[0, 0]) < 1e-9 or abs(K[1, 1]) < 1e-9 or abs(np.linalg.det(K)) < 1e-12:
        raise GeometryError(f"{name} is singular (fx={K[0, 0]}, fy={K[1, 1]}); check the camera_info / calibration")
    return K


@dataclass(frozen=True, eq=False)
class PinholeCamera:
    """Pinhole intrinsics K (3x3, pixels, pixel centres at integer coordinates) for an image of width x height."""

    K: np.ndarray
    width: int
    height: int

    def __eq__(self, other: object) -> bool:
        # the generated __eq__ would compare K elementwise and fail on the array's truth value
        if not isinstance(other, PinholeCamera):
            return NotImplemented
        return (self.width, self.height) == (other.width, other.height) and bool(np.array_equal(self.K, other.K))

    def __post_init__(self) -> None:
        object.__setattr__(self, "K", check_intrinsics(self.K))
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise GeometryError(f"image size must be positive, got {self.width}x{self.height}")
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def cx(self) -> float:
        return float(self.K[0, 2])

    @property
    def cy(self) -> float:
        return float(self.K[1, 2])

    def scaled(self, width: int, height: int) -> "PinholeCamera":
        """The same camera resampled to width x height.

        With pixel centres at integer coordinates, pixel edges sit at -0.5 and W - 0.5, so a point at u maps to
        (u + 0.5) * s - 0.5: focal lengths scale by s and the principal point by the same affine map.
        """
        sx, sy = width / self.width, height / self.height
        K = self.K.copy()
        K[0, 0] *= sx
        K[0, 1] *= sx
        K[1, 1] *= sy
        K[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
        K[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
        return PinholeCamera(K, width, height)


# ----------------------------------------------------------------------------------------------------- transforms


def check_rigid(T: np.ndarray, name: str = "T", atol: float = 1e-4) -> np.ndarray:
    """Return T as a (4, 4) float64 rigid transform or raise GeometryError naming what is wrong."""
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4):
        raise GeometryError(f"{name} must be a 4x4 transform, got shape {T.shape}")
    if not np.all(np.isfinite(T)):
        raise GeometryError(f"{name} has non-finite entries")
    if not np.allclose(T[3], [0.0, 0.0, 0.0, 1.0], atol=atol):
        raise GeometryError(f"{name} last row must be [0, 0, 0, 1], got {T[3].tolist()}")
    R = T[:3, :3]
    if not np.allclose(R.T @ R, np.eye(3), atol=atol) or np.linalg.det(R) < 0:
        raise GeometryError(
            f"{name} is not rigid: its 3x3 block must be a rotation (orthonormal, det +1), "
            f"got det {np.linalg.det(R):.4f}; re-orthonormalise it or check the quaternion order [qx, qy, qz, qw]"
        )
    return T


def invert_transform(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 transform (T_a_b -> T_b_a), exact for rotations: [R^T, -R^T t]."""
    T = check_rigid(T)
    inv = np.eye(4)
    inv[:3, :3] = T[:3, :3].T
    inv[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return inv


def quaternion_to_matrix(q: ArrayLike) -> np.ndarray:
    """Rotation matrix (3, 3) from a quaternion [qx, qy, qz, qw] (ROS order); normalised first."""
    q = np.asarray(q, dtype=np.float64)
    norm = np.linalg.norm(q)
    if q.shape != (4,) or not np.isfinite(norm) or norm < 1e-9:
        raise GeometryError(
            f"quaternion must be 4 finite numbers [qx, qy, qz, qw] with non-zero norm, got {q.tolist()}"
        )
    x, y, z, w = q / norm
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quaternion(R: np.ndarray) -> np.ndarray:
    """Quaternion [qx, qy, qz, qw] with qw >= 0 from a rotation matrix (Shepperd's method: stable for all angles)."""
    R = np.asarray(R, dtype=np.float64)
    trace = np.trace(R)
    if trace > 0:
        s = 2.0 * math.sqrt(trace + 1.0)
        q = [(R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s, 0.25 * s]
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = 2.0 * math.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2])
        q = [0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s, (R[2, 1] - R[1, 2]) / s]
    elif R[1, 1] > R[2, 2]:
        s = 2.0 * math.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2])
        q = [(R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s, (R[0, 2] - R[2, 0]) / s]
    else:
        s = 2.0 * math.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1])
        q = [(R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s, (R[1, 0] - R[0, 1]) / s]
    quat = np.asarray(q)
    quat /= np.linalg.norm(quat)
    return -quat if quat[3] < 0 else quat


def pose_to_matrix(pose: ArrayLike) -> np.ndarray:
    """4x4 transform from a pose [x, y, z, qx, qy, qz, qw] (the pose of frame b in frame a gives T_a_b)."""
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape != (7,) or not np.all(np.isfinite(pose)):
        raise GeometryError(f"pose must be 7 finite numbers [x, y, z, qx, qy, qz, qw], got {pose.tolist()}")
    T = np.eye(4)
    T[:3, :3] = quaternion_to_matrix(pose[3:])
    T[:3, 3] = pose[:3]
    return T


def matrix_to_pose(T: np.ndarray) -> np.ndarray:
    """Pose [x, y, z, qx, qy, qz, qw] (qw >= 0) of a rigid 4x4 transform; inverse of `pose_to_matrix`."""
    T = check_rigid(T)
    return np.concatenate([T[:3, 3], matrix_to_quaternion(T[:3, :3])])


def rotation_x(angle_rad: float) -> np.ndarray:
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rotation_y(angle_rad: float) -> np.ndarray:
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
