"""Static-scene memory for a fixed camera: the background behind the robot, remembered from frames where it was not.

Per source pixel the memory holds a colour, a depth and how many frames agreed on them. Each frame updates the
pixels off the robot (its rendered mask, dilated): a measurement within the depth tolerance of the memory is averaged
in (sensor noise), a different one replaces it (the scene changed there: an object moved). When most of the frame
disagrees with the memory, or the camera's pose relative to the robot moves (TF), the memory is cleared. Its size is
fixed (one frame's worth of arrays), so it is bounded however long it runs.

Cost: the update touches every pixel of the frame, so by default each update visits every eighth row, in turn (a
pixel is refreshed every eighth frame: 3.75 times a second at 30 Hz, enough for a background that stays put); a
fresh memory takes the whole first frame. On the held-out robots (docs/EVALUATION.md, 13-frame clips) every eighth
row instead of every second cost at most 0.1 dB of PSNR behind the robot, of the memory's gain there (up to 2.2 dB).
"""

from __future__ import annotations

import cv2
import numpy as np

from . import kernels
from .compose import mask_box
from .stages import stage

_MAX_AVERAGE = 15  # frames


class StaticSceneMemory:
    """Background colour and depth per source pixel (see the module docstring).

    Args:
        depth_tolerance: relative depth difference under which a measurement agrees with the memory.
        change_fraction: clear everything when more than this fraction of the remembered, visible pixels disagree.
        max_pose_change_m, max_pose_change_deg: clear when the camera moves this much relative to the robot root.
        dilate_px: grow the robot mask by this much before trusting the pixels around it.
        min_observations: frames a pixel must have agreed on before it is used to fill.
        row_stride: each update visits every ``row_stride``-th row, the next update the rows after them (an eighth
            of the cost per frame at 8; a pixel then averages its last 15 visits over eight times as many frames).
    """

    def __init__(
        self,
        depth_tolerance: float = 0.03,
        change_fraction: float = 0.3,
        max_pose_change_m: float = 0.01,
        max_pose_change_deg: float = 1.0,
        dilate_px: int = 4,
        min_observations: int = 1,
        row_stride: int = 8,
    ) -> None:
        if row_stride < 1:
            raise ValueError(f"row_stride must be at least 1, got {row_stride}")
        self.depth_tolerance = depth_tolerance
        self.change_fraction = change_fraction
        self.max_pose_change_m = max_pose_change_m
        self.max_pose_change_deg = max_pose_change_deg
        self.dilate_px = dilate_px
        self.min_observations = min_observations
        self.row_stride = row_stride
        self._next_row = 0  # the first row the next update visits
        self.rgb: np.ndarray | None = None
        self.depth: np.ndarray | None = None
        self.count: np.ndarray | None = None
        # what `background` returns, kept up to date by each update (no full-image pass per frame to make it)
        self._fill_rgb: np.ndarray | None = None
        self._fill_depth: np.ndarray | None = None
        self.T_cam_root: np.ndarray | None = None
        self.resets = 0

    def reset(self) -> None:
        self.rgb = self.depth = self.count = self._fill_rgb = self._fill_depth = self.T_cam_root = None
        self.resets += 1

    def _camera_moved(self, T_cam_root: np.ndarray) -> bool:
        if self.T_cam_root is None or np.array_equal(self.T_cam_root, T_cam_root):  # a fixed camera's usual case
            return False
        delta = np.linalg.solve(self.T_cam_root, T_cam_root)
        angle = np.degrees(np.arccos(np.clip((np.trace(delta[:3, :3]) - 1) / 2, -1, 1)))
        return bool(np.linalg.norm(delta[:3, 3]) > self.max_pose_change_m or angle > self.max_pose_change_deg)

    def update(
        self,
        rgb: np.ndarray,
        depth: np.ndarray,
        robot_mask: np.ndarray,
        T_cam_root: np.ndarray | None = None,
        robot_box: tuple[int, int, int, int] | None = None,
    ) -> None:
        """Remember the background of one source frame: rgb (H, W, 3) uint8, depth (H, W) metres (0 invalid),
        robot_mask (H, W) bool (the rendered robot), T_cam_root (4, 4) the camera pose used to render it, robot_box
        (v_lo, v_hi, u_lo, u_hi) a box holding every robot pixel (`RobotRender.box`; None: found from the mask)."""
        if T_cam_root is not None and self._camera_moved(T_cam_root):
            self.reset()
        if self.depth is not None and self.depth.shape != depth.shape:
            self.reset()
        fresh = self.depth is None
        if fresh:
            self.rgb = np.zeros(rgb.shape, np.float32)
            self.depth = np.zeros(depth.shape, np.float32)
            self.count = np.zeros(depth.shape, np.uint16)
            self._fill_rgb = np.zeros(rgb.shape, np.uint8)
            self._fill_depth = np.zeros(depth.shape, np.float32)
        assert self.rgb is not None and self.count is not None and self._fill_rgb is not None  # set together
        assert self._fill_depth is not None
        if T_cam_root is not None:
            self.T_cam_root = np.asarray(T_cam_root, float).copy()
        with stage("dilate mask"):
            # the dilated robot only in a box holding it (off the box it is all False): no full-frame mask
            robot = np.asarray(robot_mask, bool)
            v_lo, v_hi, u_lo, u_hi = mask_box(robot, robot_box, max(self.dilate_px, 0))
            near_robot = np.ascontiguousarray(robot[v_lo:v_hi, u_lo:u_hi])
            if self.dilate_px > 0 and near_robot.size:
                square = np.ones((2 * self.dilate_px + 1,) * 2, np.uint8)
                near_robot = cv2.dilate(near_robot.view(np.uint8), square).view(bool)
        depth = np.asarray(depth, np.float32)
        # a running mean over agreeing frames, capped so the memory still follows slow lighting changes; the same
        # pass counts how many remembered pixels the frame contradicts (on the rows it visits)
        first_row, stride = (0, 1) if fresh else (self._next_row, self.row_stride)
        self._next_row = 0 if fresh else (first_row + 1) % self.row_stride
        with stage("average in"):
            known, disagree = kernels.memory_update(
                rgb,
                depth,
                near_robot,
                v_lo,
                u_lo,
                self.count,
                self.rgb,
                self.depth,
                np.float32(self.depth_tolerance),
                _MAX_AVERAGE,
                self.min_observations,
                self._fill_rgb,
                self._fill_depth,
                first_row,
                stride,
            )
        if known > 100 and disagree > self.change_fraction * known:  # a new scene: this frame starts the memory
            self.reset()
            self.update(rgb, depth, robot_mask, T_cam_root, robot_box)

    def background(self) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
        """The remembered (rgb (H, W, 3) uint8, depth (H, W) float32, 0 where unknown), or (None, None): read-only
        views that the next update rewrites in place (no copy per frame; copy what must outlive it)."""
        if self._fill_rgb is None or self._fill_depth is None:  # set together
            return None, None
        rgb, depth = self._fill_rgb.view(), self._fill_depth.view()
        rgb.flags.writeable = depth.flags.writeable = False
        return rgb, depth
