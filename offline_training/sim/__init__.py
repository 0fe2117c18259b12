"""MuJoCo robots, scenes, cameras and rendering for the data engine.

``render_two_view_clip(robot, num_frames, height, width, seed)`` renders one sample in the docs/DESIGN.md contract-6
schema; ``robot_names(split)`` lists the library, ``available_robots(split)`` the robots whose assets load.
"""

import os

# MuJoCo picks its GL backend at import time; the machines here render headless through EGL (Mesa llvmpipe).
os.environ.setdefault("MUJOCO_GL", "egl")

from .clip import CameraConfig, MotionConfig, render_two_view_clip  # noqa: E402
from .robots import LIBRARY, MORPHOLOGY, TEST_ROBOTS, RobotLoadError, available_robots, robot_names  # noqa: E402
from .scene import SceneConfig  # noqa: E402

__all__ = [
    "CameraConfig",
    "MotionConfig",
    "SceneConfig",
    "LIBRARY",
    "MORPHOLOGY",
    "TEST_ROBOTS",
    "RobotLoadError",
    "available_robots",
    "render_two_view_clip",
    "robot_names",
]
