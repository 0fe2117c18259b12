"""Hand-eye consistency: does the robot drawn from its model (with TF's camera pose) sit where the depth sensor sees it?

The rendered source-view robot surface is aligned to the sensor's point cloud around it by translation-only
point-to-plane ICP (nearest neighbours under a shrinking distance gate, sensor normals from the depth image, Huber
weights: robust to the table and wall points that surround the arm; point-to-point steps crawl along surfaces).
A hand-eye error shows up as the translation that moves the model onto the sensor's robot; a rotation
error shows up as its translation at the robot (what matters for drawing). `HandEyeMonitor` keeps a running median
over checked frames and logs one WARN with the measured offset when it passes the tolerance, so a bad calibration is
reported rather than drawn silently in the wrong place. `BackgroundHandEyeCheck` runs the check on a worker thread
(~40 ms per check on the 2-core CPU), so the frame that asks for it does not wait.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque

import cv2
import numpy as np

_LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class HandEyeOffset:
    """``offset_m`` (3,): the translation in the camera's optical frame that moves the model's robot onto the sensor's
    (sensor minus model); ``inliers``: fraction of model points within 1 cm of the sensor after the move;
    ``points``: model points used."""

    offset_m: np.ndarray
    inliers: float
    points: int

    @property
    def distance_m(self) -> float:
        return float(np.linalg.norm(self.offset_m))


def _lift(depth: np.ndarray, mask: np.ndarray, K: np.ndarray) -> np.ndarray:
    v, u = np.nonzero(mask)
    z = depth[v, u].astype(np.float64)
    return np.stack([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z], axis=1)


def _normals(depth: np.ndarray, K: np.ndarray, max_step_m: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals (H, W, 3) of the depth image's surface from central differences, and where they are valid
    (all four neighbours measured, no depth jump larger than ``max_step_m``)."""
    height, width = depth.shape
    v, u = np.mgrid[0:height, 0:width]
    z = np.where(np.isfinite(depth), depth, 0).astype(np.float64)
    points = np.stack([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z], axis=-1)
    normals = np.zeros_like(points)
    dx = points[1:-1, 2:] - points[1:-1, :-2]
    dy = points[2:, 1:-1] - points[:-2, 1:-1]
    normals[1:-1, 1:-1] = np.cross(dx, dy)
    norm = np.linalg.norm(normals, axis=-1, keepdims=True)
    valid = np.zeros((height, width), bool)
    valid[1:-1, 1:-1] = (
        (z[1:-1, 2:] > 0)
        & (z[1:-1, :-2] > 0)
        & (z[2:, 1:-1] > 0)
        & (z[:-2, 1:-1] > 0)
        & (np.abs(dx[..., 2]) < max_step_m)
        & (np.abs(dy[..., 2]) < max_step_m)
    )
    valid &= norm[..., 0] > 0
    return normals / np.maximum(norm, 1e-12), valid


def measure_hand_eye_offset(
    model_depth: np.ndarray,
    model_mask: np.ndarray,
    sensor_depth: np.ndarray,
    K: np.ndarray,
    search_px: int = 40,
    max_points: int = 2000,
    iterations: int = 8,
    gate_m: tuple[float, float] = (0.08, 0.015),
    seed: int = 0,
) -> HandEyeOffset | None:
    """Translation between the rendered robot (model depth and mask, source camera) and the sensor depth.

    Args:
        search_px: how far around the rendered silhouette sensor points are taken (covers offsets of a few cm).
        gate_m: the correspondence distance gate, shrinking from the first to the second value.
        max_points, iterations: model points and ICP steps; their product is the cost (nearest-neighbour queries).
            On the data engine's Panda (coarse source mesh; 480x640 with 2 and 4 cm errors, 240x320 without) 2000
            points and 8 steps recover the offset to 0.25 mm, as 3000 and 20 did (0.2 mm), at a quarter of the cost;
            with 1000 points the sensor cloud (8 per model point) gets sparse enough to lower the inlier fraction.
            The warning's tolerance is 1 cm.
    Returns:
        None when fewer than 200 robot pixels are visible or the sensor has almost no depth around them.
    """
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    rows, cols = np.flatnonzero(model_mask.any(axis=1)), np.flatnonzero(model_mask.any(axis=0))
    if len(rows) == 0:
        return None
    # everything below happens within search_px (+1 for the normals' differences) of the silhouette: work on that
    # crop of the images (the same points in the same order as on the whole image), with K moved along
    margin = search_px + 1
    v_lo, v_hi = max(rows[0] - margin, 0), min(rows[-1] + 1 + margin, model_mask.shape[0])
    u_lo, u_hi = max(cols[0] - margin, 0), min(cols[-1] + 1 + margin, model_mask.shape[1])
    crop = (slice(v_lo, v_hi), slice(u_lo, u_hi))
    model_mask, model_depth, sensor_depth = model_mask[crop], model_depth[crop], sensor_depth[crop]
    K = np.asarray(K, float).copy()
    K[0, 2], K[1, 2] = K[0, 2] - u_lo, K[1, 2] - v_lo
    # edges carry mixed depth in real sensors: use the silhouette's interior
    interior = cv2.erode(model_mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & (model_depth > 0)
    if interior.sum() < 200:
        return None
    around = cv2.dilate(model_mask.astype(np.uint8), np.ones((2 * search_px + 1,) * 2, np.uint8)).astype(bool)
    normal_image, has_normal = _normals(sensor_depth, K)
    valid = around & has_normal & (sensor_depth > 0)
    if valid.sum() < 200:
        return None
    model = _lift(model_depth, interior, K)
    sensor, normals = _lift(sensor_depth, valid, K), normal_image[valid]
    if len(model) > max_points:
        model = model[rng.choice(len(model), max_points, replace=False)]
    if len(sensor) > 8 * max_points:
        keep = rng.choice(len(sensor), 8 * max_points, replace=False)
        sensor, normals = sensor[keep], normals[keep]
    tree = cKDTree(sensor)
    offset = np.zeros(3)
    for gate in np.geomspace(gate_m[0], gate_m[1], iterations):
        distance, index = tree.query(model + offset, distance_upper_bound=gate)
        matched = np.isfinite(distance)
        if matched.sum() < 50:
            break
        n = normals[index[matched]]
        residual = np.einsum("ij,ij->i", n, sensor[index[matched]] - (model[matched] + offset))
        weight = np.minimum(1.0, 0.005 / np.maximum(np.abs(residual), 1e-9))  # Huber at 5 mm
        A = np.einsum("i,ij,ik->jk", weight, n, n) + 1e-6 * len(n) * np.eye(3)
        offset = offset + np.linalg.solve(A, np.einsum("i,ij,i->j", weight, n, residual))
    distance, _ = tree.query(model + offset)
    return HandEyeOffset(offset, float(np.mean(distance < 0.01)), len(model))


class HandEyeMonitor:
    """Running hand-eye check over frames: WARNs once (with the offset) when the median offset of the last
    ``window`` checks exceeds ``tolerance_m``, and logs INFO when it comes back."""

    def __init__(self, tolerance_m: float = 0.01, window: int = 5, logger: logging.Logger = _LOG) -> None:
        self.tolerance_m = tolerance_m
        self.offsets: deque[np.ndarray] = deque(maxlen=window)
        self.bad = False
        self.logger = logger

    def update(self, result: HandEyeOffset | None) -> bool:
        """Add one check; returns whether the calibration currently looks bad."""
        if result is None:
            return self.bad
        self.offsets.append(result.offset_m)
        median = np.median(np.stack(self.offsets), axis=0)
        distance = float(np.linalg.norm(median))
        if distance > self.tolerance_m and not self.bad and len(self.offsets) == self.offsets.maxlen:
            self.bad = True
            self.logger.warning(
                "hand-eye calibration looks wrong: the robot drawn from its URDF and TF sits %.1f cm from where the "
                "depth sensor sees it (offset x=%+.1f y=%+.1f z=%+.1f cm in the camera's optical frame, median of %d "
                "frames); recalibrate or correct the camera's TF (or robot.T_camera_root)",
                100 * distance,
                *(100 * median),
                len(self.offsets),
            )
        elif distance <= self.tolerance_m and self.bad:
            self.bad = False
            self.logger.info(
                "hand-eye check: the robot model and the depth sensor agree again (%.1f cm)", 100 * distance
            )
        return self.bad


class BackgroundHandEyeCheck:
    """Runs `measure_hand_eye_offset` on a worker thread and feeds its result to a `HandEyeMonitor` (which WARNs from
    that thread): the frame thread only hands over its images. One check at a time: a check asked for while the last
    still runs is skipped (a calibration drifts over minutes, not frames), unless ``skip_when_busy`` is False: then
    `submit` first waits for it, so that offline tools run every due check and warn the same on every run. The images
    handed over must not change afterwards (a robot render's arrays are read-only; pass a copy of a buffer the caller
    reuses).

    ``checks`` counts finished checks and ``cpu_ns`` their thread CPU (what the benchmark reports for the worker)."""

    def __init__(self, monitor: HandEyeMonitor, skip_when_busy: bool = True) -> None:
        self.monitor = monitor
        self.skip_when_busy = skip_when_busy
        self.checks = 0
        self.cpu_ns = 0
        self._worker: threading.Thread | None = None

    def submit(self, model_depth: np.ndarray, model_mask: np.ndarray, sensor_depth: np.ndarray, K: np.ndarray) -> bool:
        """Start a check of these images (see `measure_hand_eye_offset`); False when skipped because the last one
        still runs."""
        if self._worker is not None and self._worker.is_alive():
            if self.skip_when_busy:
                return False
            self._worker.join()
        self._worker = threading.Thread(
            target=self._check, args=(model_depth, model_mask, sensor_depth, K), name="hand-eye check", daemon=True
        )
        self._worker.start()
        return True

    def _check(self, model_depth: np.ndarray, model_mask: np.ndarray, sensor_depth: np.ndarray, K: np.ndarray) -> None:
        start = time.thread_time_ns()
        try:
            result = measure_hand_eye_offset(model_depth, model_mask, sensor_depth, K)
        except Exception as error:  # noqa: BLE001 - a failed check is reported, never raised into the worker
            self.monitor.logger.warning("hand-eye check failed: %s: %s", type(error).__name__, error)
            result = None
        self.monitor.update(result)
        self.cpu_ns += time.thread_time_ns() - start
        self.checks += 1

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait for the running check (tests; a caller about to end that wants the last check's warning); returns
        whether no check is running any more."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout_s)
        return worker is None or not worker.is_alive()
