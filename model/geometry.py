"""Camera geometry core: intrinsics, rigid transforms, target viewpoints and the forward warp (DESIGN.md contracts 1, 2).

Conventions (DESIGN.md): ROS optical frames (x right, y down, z forward); `T_a_b` maps points from frame b into
frame a; K in pixels with pixel centres at integer coordinates; depth in metres where 0, NaN and inf mean "no
measurement". Negative depth is not a missing measurement but a broken input, so it raises `GeometryError`.

The warp lifts every source pixel to 3D and renders the pixel grid as a triangle mesh into the target camera
(`model.warp_kernels` on CPU, `model.warp_torch` for tensors). Triangles that span a depth discontinuity are dropped,
so disocclusions stay holes instead of being smeared with foreground colour; rasterising triangles instead of points
leaves no cracks when the target magnifies the source; a z-buffer keeps the nearest surface.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np


class GeometryError(ValueError):
    """Invalid geometric input (shapes, intrinsics, transforms, depth); the message says what to fix."""


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
            f"{name} is not rigid: its 3x3 block must be a rotation (orthonormal, det +1), got det {np.linalg.det(R):.4f}; "
            "re-orthonormalise it or check the quaternion order [qx, qy, qz, qw]"
        )
    return T


def invert_transform(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 transform (T_a_b -> T_b_a), exact for rotations: [R^T, -R^T t]."""
    T = check_rigid(T)
    inv = np.eye(4)
    inv[:3, :3] = T[:3, :3].T
    inv[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return inv


def quaternion_to_matrix(q: Sequence[float]) -> np.ndarray:
    """Rotation matrix (3, 3) from a quaternion [qx, qy, qz, qw] (ROS order); normalised first."""
    q = np.asarray(q, dtype=np.float64)
    norm = np.linalg.norm(q)
    if q.shape != (4,) or not np.isfinite(norm) or norm < 1e-9:
        raise GeometryError(f"quaternion must be 4 finite numbers [qx, qy, qz, qw] with non-zero norm, got {q.tolist()}")
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
    q = np.asarray(q)
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q


def pose_to_matrix(pose: Sequence[float]) -> np.ndarray:
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


# ----------------------------------------------------------------------------------------------- target viewpoints


@dataclass
class OrbitTarget:
    """Virtual camera orbiting the source camera's line of sight (DESIGN.md contract 2).

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
            raise GeometryError("orbit target with pivot_m=0 needs the depth image and K to find the pivot; pass them or set pivot_m")
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


# -------------------------------------------------------------------------------------------------------- the warp


@dataclass
class WarpResult:
    """A source view rendered into the target camera. Single frame: image (h, w, 3) in the input's dtype (holes 0),
    depth (h, w) float32 metres along the target optical axis (0 where empty), mask (h, w) bool (a source surface
    landed here), coverage (h, w) float32 in [0, 1] (soft confidence: sampling density times nearness to valid
    pixels). Clip form: the same with a leading T axis."""

    image: np.ndarray
    depth: np.ndarray
    mask: np.ndarray
    coverage: np.ndarray


@dataclass(frozen=True)
class WarpSettings:
    """Tuning of the mesh warp.

    max_depth_ratio, max_parallax_px: a triangle is dropped as spanning a depth discontinuity when its source depths
        differ by more than `max_depth_ratio` (max/min - 1) AND the gap really opens in the target by more than
        `max_parallax_px` pixels; the disocclusion then stays a hole instead of being smeared with foreground colour.
    max_triangle_px: triangles whose target bounding box exceeds this many pixels per side are dropped (grazing
        surfaces and points close to the camera plane would otherwise smear over the image).
    near_m: points closer than this to the target camera plane (or behind it) are dropped.
    edge_px: coverage ramps from 0 at a hole to 1 at this many pixels away from it.
    occlude_unseen: a frame's surfaces lying more than max_depth_ratio behind that frame's dropped discontinuity
        triangles (space the source never saw, e.g. a robot's far side) are left as holes instead of showing the
        background the unseen thing may hide. Off, the warp covers more at lower accuracy there.
    """

    max_depth_ratio: float = 0.05
    max_parallax_px: float = 1.0
    max_triangle_px: int = 64
    near_m: float = 1e-3
    edge_px: int = 3
    occlude_unseen: bool = True


DEFAULT_SETTINGS = WarpSettings()


def validate_depth(depth: np.ndarray, name: str = "depth") -> np.ndarray:
    """float32 depth with NaN/inf mapped to 0 (invalid); raises GeometryError on negative values or no valid pixel.

    Returns the input itself (no copy) when it is already float32 and finite, which is the common case at camera rate.
    """
    depth = np.asarray(depth)
    if not np.issubdtype(depth.dtype, np.number):
        raise GeometryError(f"{name} must be numeric (metres), got dtype {depth.dtype}")
    depth = depth.astype(np.float32, copy=False)
    if (depth < 0).any():  # NaN compares False, so only real negatives count
        raise GeometryError(
            f"{name} has negative values (min {np.nanmin(depth):.3f} m); depth must be metres >= 0 with 0/NaN/inf "
            "marking missing measurements"
        )
    if not np.isfinite(depth).all():
        depth = np.where(np.isfinite(depth), depth, np.float32(0.0))
    if not (depth > 0).any():
        raise GeometryError(f"{name} has no valid pixel (all 0, NaN or inf); check the depth topic / units")
    return depth


def fill_depth_holes(depth: np.ndarray, max_gap_px: int = 32) -> np.ndarray:
    """Fill short horizontal runs of invalid depth with the farther of the valid depths on either side.

    Stereo and structured-light cameras (RealSense included) lose depth mostly in the "shadow" beside a foreground
    edge along the baseline, where the true surface is the background; the farther neighbour is therefore the right
    guess (librealsense's hole-filling filter offers the same rule). The colour of those pixels is observed, so
    filling their depth lets the warp use them instead of leaving holes. Runs longer than `max_gap_px` stay invalid;
    runs touching the image border take their one neighbour.

    Args:
        depth: (H, W) metres, 0 (or NaN/inf) invalid; negative values raise GeometryError (see `validate_depth`).
        max_gap_px: longest run to fill; 0 disables.
    Returns:
        (H, W) float32; the validated input itself when there is nothing to fill, else a new array.
    """
    depth = validate_depth(depth)
    invalid = depth <= 0
    if max_gap_px <= 0 or not invalid.any():
        return depth
    depth = depth.copy()
    height, width = depth.shape
    columns = np.arange(width)[None]
    rows = np.arange(height)[:, None]
    left = np.maximum.accumulate(np.where(invalid, -1, columns), axis=1)
    right = np.minimum.accumulate(np.where(invalid, width, columns)[:, ::-1], axis=1)[:, ::-1]
    left_depth = np.where(left >= 0, depth[rows, left.clip(0, width - 1)], 0.0)
    right_depth = np.where(right < width, depth[rows, right.clip(0, width - 1)], 0.0)
    gap = np.minimum(right, width) - np.maximum(left, -1) - 1
    fill = invalid & (gap <= max_gap_px)
    depth[fill] = np.maximum(left_depth, right_depth)[fill]
    return depth


def _check_image_and_depth(image: np.ndarray, depth: np.ndarray, clip: bool) -> None:
    if image.ndim != 3 + clip or image.shape[-1] != 3:
        raise GeometryError(f"image must be {'(T, H, W, 3)' if clip else '(H, W, 3)'}, got shape {image.shape}")
    if depth.shape != image.shape[:-1]:
        raise GeometryError(f"depth shape {depth.shape} must match the image's {image.shape[:-1]} (align depth to colour first)")


def _check_out_hw(out_hw: Sequence[int]) -> tuple[int, int]:
    if len(out_hw) != 2 or int(out_hw[0]) <= 0 or int(out_hw[1]) <= 0:
        raise GeometryError(f"out_hw must be (height, width) > 0, got {out_hw}")
    return int(out_hw[0]), int(out_hw[1])


def forward_warp(
    image: np.ndarray,
    depth: np.ndarray,
    K_src: np.ndarray,
    K_dst: np.ndarray,
    T_dst_src: np.ndarray,
    out_hw: Sequence[int],
    settings: WarpSettings = DEFAULT_SETTINGS,
) -> WarpResult:
    """Render a source RGB-D frame into the target camera.

    Args:
        image: (H, W, 3) source colour, any numeric dtype (kept in the output).
        depth: (H, W) source depth in metres; 0/NaN/inf invalid, negative raises GeometryError.
        K_src, K_dst: (3, 3) intrinsics of the source and the target camera.
        T_dst_src: (4, 4) rigid transform from source optical to target optical frame.
        out_hw: (h, w) of the target image.
    Returns:
        WarpResult with image (h, w, 3), depth (h, w) float32, mask (h, w) bool, coverage (h, w) float32.
    """
    image, depth = np.asarray(image), np.asarray(depth)
    _check_image_and_depth(image, depth, clip=False)
    result = forward_warp_clip(image[None], depth[None], K_src, K_dst, T_dst_src, out_hw, settings=settings)
    return WarpResult(result.image[0], result.depth[0], result.mask[0], result.coverage[0])


def static_neighbour_depth(depths: np.ndarray, target_index: int, source_index: int, window: Sequence[int], tol: float) -> np.ndarray:
    """Depth of frame `source_index` kept only where it adds static background that frame `target_index` lacks.

    With a fixed source camera the static background at a pixel is the farthest surface seen there over time, and a
    neighbouring frame adds information only where frame `target_index` sees something nearer (an object that has
    moved away since). A pixel is therefore kept if it is farther than frame `target_index`'s measurement AND within
    `tol` of the farthest depth over the frames `window`; everything else (moving objects, which would ghost, and
    surfaces the target frame already has) is dropped, as are pixels frame `target_index` did not measure.

    Args:
        depths: (T, H, W) metres, 0 invalid. window: the frame indices fused into this target, itself included.
    Returns:
        (H, W) float32, 0 where dropped.
    """
    reference = depths[target_index]
    candidate = depths[source_index]
    farthest = depths[list(window)].max(axis=0)
    keep = (reference > 0) & (candidate > reference * (1.0 + tol)) & (candidate >= farthest * (1.0 - tol))
    return np.where(keep, candidate, np.float32(0.0))


def forward_warp_clip(
    images: np.ndarray,
    depths: np.ndarray,
    K_src: np.ndarray,
    K_dst: np.ndarray,
    T_dst_src: np.ndarray,
    out_hw: Sequence[int],
    fuse_frames: int = 0,
    settings: WarpSettings = DEFAULT_SETTINGS,
    backend: str = "numba",
) -> WarpResult:
    """Warp a clip frame by frame; optionally fuse static surfaces from neighbouring frames.

    Args:
        images: (T, H, W, 3) source colour; depths: (T, H, W) metres (see `forward_warp`).
        K_src, K_dst: (3, 3); T_dst_src: (4, 4) for all frames or (T, 4, 4) per frame.
        out_hw: (h, w) of the target images.
        fuse_frames: > 0 lets target frame t also receive static background (see `static_neighbour_depth`) from up
            to this many source frames nearest in time to t, where frame t's view of it was blocked by something
            that moved; the nearest surface still wins. Assumes the source camera does not move.
        backend: "numba" (CPU kernel) or "torch" (the same algorithm on torch tensors, CPU or CUDA).
    Returns:
        WarpResult with a leading T axis on every field.
    """
    images = np.asarray(images)
    depths = np.asarray(depths)
    _check_image_and_depth(images, depths, clip=True)
    num_frames = images.shape[0]
    h, w = _check_out_hw(out_hw)
    K_src = check_intrinsics(K_src, "K_src")
    K_dst = check_intrinsics(K_dst, "K_dst")
    transforms = np.asarray(T_dst_src, dtype=np.float64)
    if transforms.shape == (4, 4):
        transforms = np.broadcast_to(transforms, (num_frames, 4, 4))
    if transforms.shape != (num_frames, 4, 4):
        raise GeometryError(f"T_dst_src must be (4, 4) or (T, 4, 4) with T={num_frames}, got {transforms.shape}")
    transforms = np.stack([check_rigid(T, f"T_dst_src[{i}]") for i, T in enumerate(transforms)])
    if fuse_frames < 0:
        raise GeometryError(f"fuse_frames must be >= 0, got {fuse_frames}")
    if num_frames == 1:
        depths = validate_depth(depths[0], "depth")[None]
    else:
        depths = np.stack([validate_depth(d, f"depth[{i}]") for i, d in enumerate(depths)])

    if backend == "numba":
        from model.warp_kernels import render_frames
    elif backend == "torch":
        from model.warp_torch import render_frames
    else:
        raise GeometryError(f"backend must be 'numba' or 'torch', got {backend!r}")

    if fuse_frames == 0:
        colour, out_depth, coverage = render_frames(images, depths, K_src, K_dst, transforms, h, w, np.arange(num_frames), settings)
        return WarpResult(colour, out_depth, out_depth > 0, coverage)
    # One source list for all targets: target t first receives its own frame, then the static background its
    # nearest neighbours in time add.
    source_frames, source_depths, target_index = [], [], []
    for t in range(num_frames):
        window = sorted(range(num_frames), key=lambda s: (abs(s - t), s))[: fuse_frames + 1]
        source_frames.append(t)
        source_depths.append(depths[t])
        target_index.append(t)
        for s in window[1:]:
            source_frames.append(s)
            source_depths.append(static_neighbour_depth(depths, t, s, window, settings.max_depth_ratio))
            target_index.append(t)
    colour, out_depth, coverage = render_frames(
        images[source_frames], np.stack(source_depths), K_src, K_dst, transforms, h, w, np.asarray(target_index), settings
    )
    return WarpResult(colour, out_depth, out_depth > 0, coverage)


def visible_in_source(
    depth_dst: np.ndarray,
    depth_src: np.ndarray,
    K_dst: np.ndarray,
    K_src: np.ndarray,
    T_src_dst: np.ndarray,
    rel_tol: float = 0.02,
) -> np.ndarray:
    """Ground-truth visibility for evaluation: which target pixels show a surface the source camera also sees.

    Each target pixel with known depth is lifted to 3D, moved into the source camera and kept if it lands inside the
    source image where the source's depth agrees within `rel_tol` (not occluded). This is the coverage a perfect
    warp could reach.

    Args:
        depth_dst: (h, w) true target depth, metres; depth_src: (H, W) source depth, metres (0/NaN/inf invalid).
        K_dst, K_src: (3, 3). T_src_dst: (4, 4) maps target optical points into the source optical frame.
    Returns:
        (h, w) bool.
    """
    K_dst, K_src, T_src_dst = check_intrinsics(K_dst, "K_dst"), check_intrinsics(K_src, "K_src"), check_rigid(T_src_dst, "T_src_dst")
    depth_dst = np.where(np.isfinite(depth_dst), depth_dst, 0.0)
    depth_src = np.where(np.isfinite(depth_src), depth_src, 0.0)
    h, w = depth_dst.shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    rays = np.linalg.solve(K_dst, np.stack([u.ravel(), v.ravel(), np.ones(h * w)]))
    points = T_src_dst[:3, :3] @ (rays * depth_dst.ravel()) + T_src_dst[:3, 3:4]
    z = points[2]
    in_front = (depth_dst.ravel() > 0) & (z > 0)
    pixels = K_src @ points
    with np.errstate(divide="ignore", invalid="ignore"):
        us = np.rint(pixels[0] / z)
        vs = np.rint(pixels[1] / z)
    height, width = depth_src.shape
    inside = in_front & (us >= 0) & (us < width) & (vs >= 0) & (vs < height)
    seen = np.zeros(h * w, bool)
    measured = depth_src[vs[inside].astype(int), us[inside].astype(int)]
    seen[inside] = (measured > 0) & (np.abs(measured - z[inside]) <= rel_tol * z[inside])
    return seen.reshape(h, w)
