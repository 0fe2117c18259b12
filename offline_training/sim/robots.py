"""The robot library: morphologies built from meshes shipped inside PyPI wheels, loaded as MuJoCo specs.

Every entry becomes an ``MjSpec`` whose root body is the robot base, with a gripper attached where the arm has none,
collision geoms moved to :data:`HIDDEN_GROUP` (they z-fight with the visual meshes), and a default pose per joint.
Joint ranges are read from the compiled model. Robots are kinematic in the synthesis: joints are set, not simulated.
"""
from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from typing import Callable

import mujoco
import numpy as np

from .assets import asset_path

# geom group that the renderer never draws: collision meshes and helper shapes end up here
HIDDEN_GROUP = 3
# robots whose morphology appears only in the test split (a test sample never shows a training morphology)
TEST_ROBOTS = ("kinova3", "ur5e", "fetch", "xarm6_bullet")


@dataclasses.dataclass(frozen=True)
class RobotEntry:
    """One morphology of the library.

    Attributes:
        name: library name (also the caption's robot name unless ``display_name`` is set).
        source: the wheel its meshes come from.
        build: returns the robot as an MjSpec (root body = robot base at the origin, facing +x).
        default_qpos: default angle/position per joint name (joints not listed default to 0 clipped into range).
        mount: "table" (base on the table top) or "floor" (standing robots, table in front of them).
        display_name: human-readable name for captions.
        kind: short morphology description for captions ("7-DoF arm", "humanoid", ...).
    """

    name: str
    source: str
    build: Callable[[], mujoco.MjSpec]
    default_qpos: dict[str, float]
    mount: str = "table"
    display_name: str = ""
    kind: str = "robot arm"


def _hide_collision_geoms(spec: mujoco.MjSpec, visual_groups: tuple[int, ...] = (1,)) -> None:
    """Move geoms not in ``visual_groups`` (collision shapes) to the hidden group; keep them for contacts."""
    for geom in spec.geoms:
        if geom.group not in visual_groups:
            geom.group = HIDDEN_GROUP
        else:
            geom.group = 1


def _robosuite(robot: str, gripper: str | None, hand_bodies: tuple[str, ...] = ("right_hand",)) -> Callable[[], mujoco.MjSpec]:
    """Loader for a robosuite arm, with ``gripper`` (a robosuite gripper xml name) on each hand body."""

    def build() -> mujoco.MjSpec:
        spec = mujoco.MjSpec.from_file(asset_path("robosuite", "models", "assets", "robots", robot, "robot.xml"))
        if gripper is not None:
            for i, hand in enumerate(hand_bodies):
                body = spec.body(hand)
                if body is None:
                    raise ValueError(f"robosuite {robot}: no body '{hand}' to attach the gripper to")
                grip = mujoco.MjSpec.from_file(asset_path("robosuite", "models", "assets", "grippers", f"{gripper}.xml"))
                body.add_frame().attach_body(grip.worldbody.first_body(), f"gripper{i}_", "")
        _hide_collision_geoms(spec)
        return spec

    return build


def _urdf(package: str, *parts: str, visual_groups: tuple[int, ...] = (1,)) -> Callable[[], mujoco.MjSpec]:
    """Loader for a URDF shipped in a wheel: ``package://`` prefixes stripped, meshdir set, visuals kept."""

    def build() -> mujoco.MjSpec:
        path = asset_path(package, *parts)
        with open(path) as f:
            text = re.sub(r"package://[^/\"]+/", "", f.read()).replace("package://", "")
        mujoco_tag = (f'<mujoco><compiler meshdir="{os.path.dirname(path)}" discardvisual="false" '
                      'balanceinertia="true" strippath="false"/></mujoco>')
        text = re.sub(r"(<robot[^>]*>)", r"\1" + mujoco_tag, text, count=1)
        # the spec keeps the file's directory for relative mesh paths, so write beside nothing: use the meshdir
        with tempfile.NamedTemporaryFile("w", suffix=".urdf", delete=False) as tmp:
            tmp.write(text)
        try:
            spec = mujoco.MjSpec.from_file(tmp.name)
        finally:
            os.unlink(tmp.name)
        _hide_collision_geoms(spec, visual_groups)
        return spec

    return build


def _mjcf(package: str, *parts: str, root_body: str | None = None, visual_groups: tuple[int, ...] = (1,)) -> Callable[[], mujoco.MjSpec]:
    """Loader for an MJCF file shipped in a wheel; ``root_body`` picks the robot out of a larger scene file."""

    def build() -> mujoco.MjSpec:
        spec = mujoco.MjSpec.from_file(asset_path(package, *parts))
        if root_body is not None:
            keep = spec.body(root_body)
            if keep is None:
                raise ValueError(f"{'/'.join(parts)}: no body '{root_body}'")
            for body in list(spec.worldbody.bodies):
                if body.name != root_body:
                    spec.delete(body)
        for geom in list(spec.worldbody.geoms):  # floors and markers of the source scene
            spec.delete(geom)
        _hide_collision_geoms(spec, visual_groups)
        return spec

    return build


_PI = float(np.pi)
LIBRARY: dict[str, RobotEntry] = {
    entry.name: entry
    for entry in [
        RobotEntry("panda", "robosuite", _robosuite("panda", "panda_gripper"),
                   dict(zip([f"joint{i}" for i in range(1, 8)], [0, _PI / 16, 0, -_PI / 2 - _PI / 3, 0, _PI - 0.2, _PI / 4])),
                   display_name="Franka Panda", kind="7-DoF arm with a parallel gripper"),
    ]
}


def robot_names(split: str | None = None) -> list[str]:
    """Library names, optionally only those of a split ("train" or "test")."""
    if split not in (None, "train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    names = sorted(LIBRARY)
    if split is None:
        return names
    return [n for n in names if (n in TEST_ROBOTS) == (split == "test")]


def load_robot(name: str) -> tuple[RobotEntry, mujoco.MjSpec]:
    """The library entry and a freshly built spec of robot ``name``."""
    if name not in LIBRARY:
        raise KeyError(f"unknown robot '{name}'; known: {', '.join(sorted(LIBRARY))}")
    entry = LIBRARY[name]
    return entry, entry.build()


def scale_spec(spec: mujoco.MjSpec, scale: float) -> None:
    """Uniformly scale a robot spec in place: body and geom offsets, primitive sizes, meshes, slide joint ranges."""
    for body in spec.bodies:
        body.pos = np.asarray(body.pos) * scale
    for frame in spec.frames:
        frame.pos = np.asarray(frame.pos) * scale
    for geom in spec.geoms:
        geom.pos = np.asarray(geom.pos) * scale
        if geom.type != mujoco.mjtGeom.mjGEOM_MESH:
            geom.size = np.asarray(geom.size) * scale
        geom.fromto = np.asarray(geom.fromto) * scale
    for mesh in spec.meshes:
        mesh.scale = np.asarray(mesh.scale) * scale
    for joint in spec.joints:
        joint.pos = np.asarray(joint.pos) * scale
        if joint.type == mujoco.mjtJoint.mjJNT_SLIDE:
            joint.range = np.asarray(joint.range) * scale
    for site in spec.sites:
        site.pos = np.asarray(site.pos) * scale
    for camera in spec.cameras:
        camera.pos = np.asarray(camera.pos) * scale
