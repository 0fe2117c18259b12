"""The robot layer of the virtual camera: the robot drawn from its URDF and joint states (see docs/ROBOT.md).

`RobotModel` parses a URDF (a `/robot_description` string or a file), resolves its meshes, computes forward
kinematics and renders colour, depth and mask into any pinhole camera. `gpu_check_case` is the robot layer's row in
`bench/gpu_check.py` (its cost per frame, stage by stage, on the device machine).
"""

from .model import RobotModel, RobotRender
from .profiling import gpu_check_case
from .urdf import RobotModelError, parse_urdf, resolve_uri

__all__ = ["RobotModel", "RobotModelError", "RobotRender", "gpu_check_case", "parse_urdf", "resolve_uri"]
