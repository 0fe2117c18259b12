"""The robot model a dataset sample refers to (docs/DESIGN.md contract 6): which robot, at what size, from which file.

A sample's ``robot_model`` is a JSON object ``{"library": name, "scale": s}``, plus ``"urdf": "package/path.urdf"``
(the file inside its installed wheel) for robots built from a URDF. :func:`robot_model_from_reference` rebuilds a
renderable `model.robot.RobotModel` whose root frame is the sample's base (``T_src_base``) and whose joints are the
sample's ``joint_names``: the URDF itself through `RobotModel.from_file` when the robot was not scaled (what a robot
with a `/robot_description` gives the robot layer), else the data engine's own build of the robot at that scale drawn
through `MujocoRobotModel` (MJCF robots, scaled robots).
"""

from __future__ import annotations

import functools
import json
from typing import Any

from .robots import LIBRARY

# the bodies of the robot under its fixed base frame (the robot's root body may itself move: Fetch's base slides)
_PREFIX = "robot/"
_BASE_BODY = _PREFIX + "__base__"


def robot_reference(name: str, scale: float) -> dict[str, Any]:
    """The ``robot_model`` field of a sample showing library robot ``name`` scaled by ``scale``."""
    reference: dict[str, Any] = {"library": name, "scale": float(scale)}
    if LIBRARY[name].urdf:
        reference["urdf"] = "/".join(LIBRARY[name].urdf)
    return reference


def robot_model_from_reference(reference: dict[str, Any]):
    """A `model.robot.RobotModel` of the robot ``reference`` names (see the module docstring); cached per reference.

    Raises:
        KeyError for a library name this installation does not know; RobotLoadError when its assets do not load.
    """
    return _model(json.dumps(reference, sort_keys=True))


@functools.lru_cache(maxsize=8)
def _model(key: str):
    from model.robot import RobotModel

    from .assets import asset_path

    reference = json.loads(key)
    if reference["library"] not in LIBRARY:
        raise KeyError(f"robot_model {reference}: unknown library robot; known: {', '.join(sorted(LIBRARY))}")
    if reference.get("urdf") and reference["scale"] == 1.0:
        return RobotModel.from_file(asset_path(*reference["urdf"].split("/")))
    return _library_model(reference["library"], float(reference["scale"]))


def _library_model(name: str, scale: float):
    """The data engine's build of robot ``name`` at ``scale`` under a fixed base body, as a `MujocoRobotModel`."""
    import mujoco

    from model.robot.mujoco_model import MujocoRobotModel

    from .robots import HIDDEN_GROUP, RobotLoadError, load_robot, mujoco_warnings_to_log, scale_spec

    _, robot_spec = load_robot(name)
    scale_spec(robot_spec, scale)
    spec = mujoco.MjSpec()
    spec.compiler.degree = False  # as the scene that the robot is attached to in the data engine
    base = spec.worldbody.add_body(name=_BASE_BODY)
    base.add_frame().attach_body(robot_spec.worldbody.first_body(), _PREFIX, "")
    with mujoco_warnings_to_log():
        try:
            model = spec.compile()
        except ValueError as error:
            raise RobotLoadError(f"robot '{name}' failed to compile as a robot model: {error}") from error
    return MujocoRobotModel(model, prefix=_PREFIX, visible_groups=[g for g in range(6) if g != HIDDEN_GROUP])
