"""The robot layer of the virtual camera: the robot drawn from its URDF and joint states (see docs/ROBOT.md).

`RobotModel` parses a URDF (a `/robot_description` string or a file), resolves its meshes, computes forward
kinematics and renders colour, depth and mask into any pinhole camera.
"""

from .model import RobotModel, RobotRender
from .urdf import RobotModelError, parse_urdf, resolve_uri

__all__ = ["RobotModel", "RobotModelError", "RobotRender", "parse_urdf", "resolve_uri"]
