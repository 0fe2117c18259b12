"""Camera geometry for the simulator: intrinsics, look-at poses, MuJoCo <-> ROS optical frames, anchor tracking.

Conventions (docs/DESIGN.md): optical frame x right, y down, z forward; ``T_a_b`` maps points from frame b into frame a;
pixel centres at integer coordinates. (MuJoCo cameras look down their -z axis with y up; the renderer places them
from optical poses, so nothing outside :mod:`.render` sees MuJoCo's convention.)
"""

from __future__ import annotations

import numpy as np


def intrinsics(fovy_deg: float, height: int, width: int) -> np.ndarray:
    """Pinhole K (3, 3) of a MuJoCo camera with vertical field of view ``fovy_deg`` rendering ``height`` x ``width``.

    OpenGL maps the frustum edges to the outer edges of the border pixels, so the optical axis hits the image at
    pixel-edge coordinate W/2, i.e. at pixel-centre coordinate (W - 1) / 2.
    """
    fy = 0.5 * height / np.tan(np.deg2rad(fovy_deg) / 2.0)
    return np.array([[fy, 0.0, (width - 1) / 2.0], [0.0, fy, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def look_at(eye: np.ndarray, target: np.ndarray, up: tuple[float, float, float] = (0.0, 0.0, 1.0)) -> np.ndarray:
    """``T_world_cam`` (4, 4) of an optical camera at ``eye`` (3,) whose +z looks at ``target`` (3,), image y down."""
    z = np.asarray(target, float) - np.asarray(eye, float)
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-6:  # looking straight along `up`: any horizontal x will do
        x = np.cross(z, np.array([1.0, 0.0, 0.0]))
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, y, z], axis=1)
    T[:3, 3] = eye
    return T


def unproject(uv: np.ndarray, depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera-frame points (N, 3) of pixels ``uv`` (N, 2) at z-depths ``depth`` (N,)."""
    uv = np.asarray(uv, float)
    x = (uv[:, 0] - K[0, 2]) / K[0, 0]
    y = (uv[:, 1] - K[1, 2]) / K[1, 1]
    return np.stack([x, y, np.ones_like(x)], axis=1) * np.asarray(depth, float)[:, None]


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pixel coordinates (N, 2) of camera-frame points (N, 3) with z > 0."""
    p = points @ K.T
    return p[:, :2] / p[:, 2:3]


def transform(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 rigid transform to points (N, 3)."""
    return points @ T[:3, :3].T + T[:3, 3]


def anchor_track(
    masks: np.ndarray, depths: np.ndarray, K_src: np.ndarray, T_tgt_src: np.ndarray, K_tgt: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The paper's 3D anchor tracking: where the robot centre lands in the target view.

    For each sampled source frame the robot centre (mask centroid) is lifted with its depth (median depth of the mask,
    robust to edge pixels), moved into the target camera, the target-frame points are averaged, and the average is
    projected.

    Args:
        masks: (S, H, W) robot masks of the sampled source frames.
        depths: (S, H, W) source depth in metres.
    Returns:
        ``anchor_tgt`` (3,) in the target optical frame and its pixel ``uv`` (2,) in the target image.
    Raises:
        ValueError if the robot is visible in none of the sampled frames.
    """
    points = []
    for mask, depth in zip(masks, depths):
        valid = (mask > 0) & (depth > 0)
        if not valid.any():
            continue
        v, u = np.nonzero(valid)
        centre = np.array([[u.mean(), v.mean()]])
        points.append(transform(T_tgt_src, unproject(centre, np.array([np.median(depth[valid])]), K_src))[0])
    if not points:
        raise ValueError("anchor tracking: the robot is not visible in any sampled source frame")
    anchor = np.mean(points, axis=0)
    return anchor, project(anchor[None], K_tgt)[0]
