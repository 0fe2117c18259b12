"""URDF parsing (as `/robot_description` carries it, or from a file) and mesh URI resolution.

Only what drawing the robot needs is read: links with their visual geometry (mesh, box, cylinder, sphere; origin,
scale, colour), joints (revolute, continuous, prismatic, fixed; floating and planar are held at zero) with origins,
axes, limits and `<mimic>`. Inertia and collision are ignored.

Mesh URIs: `package://pkg/rest` resolves through the ament index (`share/pkg` under every `AMENT_PREFIX_PATH` entry),
then through the search paths (`<path>/pkg/rest`), then against the URDF's own directory (`<urdf dir>/pkg/rest`, the
layout of pybullet_data and of URDFs stored beside their meshes); `file:///abs/path` and absolute paths are taken
as they are; relative paths resolve against the URDF's directory and the search paths.
"""

from __future__ import annotations

import dataclasses
import os
import xml.etree.ElementTree as ET
from typing import Sequence
from urllib.parse import unquote, urlparse

import numpy as np


class RobotModelError(ValueError):
    """A robot description that cannot be used (unparsable URDF, missing mesh, unknown joint); the message names it."""


@dataclasses.dataclass(frozen=True)
class Visual:
    """One `<visual>` of a link.

    Attributes:
        origin: T_link_visual (4, 4).
        kind: "mesh", "box", "cylinder" or "sphere".
        mesh_path: resolved absolute file path (kind "mesh").
        scale: (3,) mesh scale.
        size: box (3,) full extents; cylinder (radius, length); sphere (radius,).
        rgba: the URDF material colour, or None when the mesh file's own colours apply.
    """

    origin: np.ndarray
    kind: str
    mesh_path: str = ""
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    size: tuple[float, ...] = ()
    rgba: tuple[float, float, float, float] | None = None


@dataclasses.dataclass(frozen=True)
class Joint:
    """One `<joint>`: T_parent_child = origin @ motion(q) with the motion along/about ``axis`` (child frame)."""

    name: str
    kind: str
    parent: str
    child: str
    origin: np.ndarray
    axis: np.ndarray
    lower: float = -np.inf
    upper: float = np.inf
    mimic: tuple[str, float, float] | None = None  # (joint, multiplier, offset)


@dataclasses.dataclass(frozen=True)
class Urdf:
    """A parsed URDF: its root link, links' visuals, and joints in parent-before-child order."""

    name: str
    root: str
    visuals: dict[str, list[Visual]]
    joints: list[Joint]

    @property
    def movable_joints(self) -> list[str]:
        """Joints a `/joint_states` message drives (revolute, continuous, prismatic; mimic joints follow others)."""
        return [j.name for j in self.joints if j.kind in MOVABLE and j.mimic is None]


MOVABLE = ("revolute", "continuous", "prismatic")


def rpy_to_matrix(rpy: Sequence[float] | np.ndarray) -> np.ndarray:
    """URDF's fixed-axis roll-pitch-yaw: R = Rz(yaw) @ Ry(pitch) @ Rx(roll)."""
    r, p, y = (float(v) for v in rpy)
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    return np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ]
    )


def _floats(text: str | None, default: Sequence[float], where: str) -> np.ndarray:
    if text is None:
        return np.asarray(default, float)
    try:
        return np.array([float(v) for v in text.split()])
    except ValueError as error:
        raise RobotModelError(f"URDF {where}: '{text}' is not a list of numbers") from error


def _origin(element: ET.Element | None, where: str) -> np.ndarray:
    T = np.eye(4)
    if element is not None:
        T[:3, :3] = rpy_to_matrix(_floats(element.get("rpy"), (0, 0, 0), where))
        T[:3, 3] = _floats(element.get("xyz"), (0, 0, 0), where)
    return T


def _ament_share_dirs(package: str) -> list[str]:
    """`share/<package>` under each AMENT_PREFIX_PATH entry that registers it in the ament index."""
    dirs = []
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        marker = os.path.join(prefix, "share", "ament_index", "resource_index", "packages", package)
        if os.path.exists(marker):
            dirs.append(os.path.join(prefix, "share", package))
    return dirs


def resolve_uri(uri: str, base_dir: str | None, search_paths: Sequence[str] = ()) -> str:
    """Absolute path of a mesh URI (see the module docstring for the order); raises RobotModelError naming the URI
    and every place it was looked for."""
    candidates: list[str] = []
    if uri.startswith("package://"):
        package, _, rest = uri[len("package://") :].partition("/")
        candidates += [os.path.join(d, rest) for d in _ament_share_dirs(package)]
        candidates += [os.path.join(d, package, rest) for d in [*search_paths, base_dir] if d]
    elif uri.startswith("file://"):
        candidates.append(unquote(urlparse(uri).path))
    elif os.path.isabs(uri):
        candidates.append(uri)
    else:
        candidates += [os.path.join(d, uri) for d in [base_dir, *search_paths] if d]
    for path in candidates:
        if os.path.isfile(path):
            return os.path.abspath(path)
    looked = ", ".join(candidates) or "nowhere (no base directory or search path given)"
    raise RobotModelError(
        f"mesh '{uri}' not found; looked in: {looked}. Source the robot's ROS workspace "
        "(AMENT_PREFIX_PATH) or set robot.mesh_search_paths"
    )


def _material_colours(robot: ET.Element) -> dict[str, tuple[float, ...]]:
    colours = {}
    for material in robot.findall("material"):
        name, colour = material.get("name"), material.find("color")
        if name and colour is not None:
            colours[name] = tuple(_floats(colour.get("rgba"), (1, 1, 1, 1), "material"))
    return colours


def _visual(
    element: ET.Element, link: str, colours: dict, base_dir: str | None, search_paths: Sequence[str]
) -> Visual | None:
    where = f"link '{link}' visual"
    origin = _origin(element.find("origin"), where)
    rgba = None
    material = element.find("material")
    if material is not None:
        colour = material.find("color")
        if colour is not None:
            rgba = tuple(_floats(colour.get("rgba"), (1, 1, 1, 1), where))
        elif material.get("name") in colours:
            rgba = colours[material.get("name")]
    geometry = element.find("geometry")
    if geometry is None or len(geometry) == 0:
        raise RobotModelError(f"URDF {where} has no <geometry>")
    shape = geometry[0]
    if shape.tag == "mesh":
        filename = shape.get("filename")
        if not filename:
            raise RobotModelError(f"URDF {where}: <mesh> without filename")
        path = resolve_uri(filename, base_dir, search_paths)
        scale = tuple(_floats(shape.get("scale"), (1, 1, 1), where))
        return Visual(origin, "mesh", mesh_path=path, scale=scale if len(scale) == 3 else scale * 3, rgba=rgba)
    if shape.tag == "box":
        return Visual(origin, "box", size=tuple(_floats(shape.get("size"), (0, 0, 0), where)), rgba=rgba)
    if shape.tag == "cylinder":
        size = (float(shape.get("radius", 0)), float(shape.get("length", 0)))
        return Visual(origin, "cylinder", size=size, rgba=rgba)
    if shape.tag == "sphere":
        return Visual(origin, "sphere", size=(float(shape.get("radius", 0)),), rgba=rgba)
    return None  # capsule and other extensions: not drawn


def parse_urdf(text: str, base_dir: str | None = None, search_paths: Sequence[str] = ()) -> Urdf:
    """Parse URDF XML ``text``; mesh URIs are resolved now (a missing mesh fails here, not at render time).

    Args:
        base_dir: the URDF file's directory (None for a `/robot_description` string).
        search_paths: extra directories for `package://` and relative mesh URIs.
    Raises:
        RobotModelError naming the problem (XML syntax, missing mesh, a joint to an unknown link, several roots).
    """
    try:
        robot = ET.fromstring(text)
    except ET.ParseError as error:
        raise RobotModelError(f"the robot description is not valid XML: {error}") from error
    if robot.tag != "robot":
        raise RobotModelError(f"the robot description's root element is <{robot.tag}>, expected <robot>")
    colours = _material_colours(robot)
    links = [link.get("name", "") for link in robot.findall("link")]
    if not links:
        raise RobotModelError("the URDF has no <link>")
    visuals: dict[str, list[Visual]] = {}
    for link_element in robot.findall("link"):
        link_name = link_element.get("name", "")  # "" when missing, so that link keys are strings
        parsed = [_visual(v, link_name, colours, base_dir, search_paths) for v in link_element.findall("visual")]
        visuals[link_name] = [v for v in parsed if v is not None]

    joints: dict[str, Joint] = {}
    for element in robot.findall("joint"):
        name, kind = element.get("name", ""), element.get("type", "")
        where = f"joint '{name}'"
        parent_element, child_element = element.find("parent"), element.find("child")
        if parent_element is None or child_element is None:
            raise RobotModelError(f"URDF {where} lacks <parent> or <child>")
        parent, child = parent_element.get("link", ""), child_element.get("link", "")
        for link in (parent, child):
            if link not in visuals:
                raise RobotModelError(f"URDF {where} refers to link '{link}', which the URDF does not define")
        axis_element = element.find("axis")
        axis = _floats(None if axis_element is None else axis_element.get("xyz"), (1, 0, 0), where)
        norm = np.linalg.norm(axis)
        if kind in MOVABLE and norm < 1e-9:
            raise RobotModelError(f"URDF {where} has a zero axis")
        limit = element.find("limit")
        lower, upper = -np.inf, np.inf
        if limit is not None and kind != "continuous":
            lower, upper = float(limit.get("lower", -np.inf)), float(limit.get("upper", np.inf))
        mimic_element = element.find("mimic")
        mimic = None
        if mimic_element is not None:
            mimic = (
                mimic_element.get("joint", ""),
                float(mimic_element.get("multiplier", 1.0)),
                float(mimic_element.get("offset", 0.0)),
            )
        joints[child] = Joint(
            name,
            kind,
            parent,
            child,
            _origin(element.find("origin"), where),
            axis / max(norm, 1e-12),
            lower,
            upper,
            mimic,
        )

    roots = [link for link in visuals if link not in joints]
    if len(roots) != 1:
        raise RobotModelError(f"the URDF must form one tree, found {len(roots)} root links: {roots[:5]}")
    # parents before children, so forward kinematics composes in one pass
    ordered, frontier = [], [roots[0]]
    children: dict[str, list[Joint]] = {}
    for joint in joints.values():
        children.setdefault(joint.parent, []).append(joint)
    while frontier:
        link = frontier.pop()
        for joint in children.get(link, []):
            ordered.append(joint)
            frontier.append(joint.child)
    if len(ordered) != len(joints):
        raise RobotModelError("the URDF's joints contain a cycle")
    names = {j.name for j in ordered}
    for joint in ordered:
        if joint.mimic is not None and joint.mimic[0] not in names:
            raise RobotModelError(f"URDF joint '{joint.name}' mimics '{joint.mimic[0]}', which does not exist")
    return Urdf(robot.get("name", ""), roots[0], visuals, ordered)


def load_urdf_file(path: str, search_paths: Sequence[str] = ()) -> Urdf:
    """Parse the URDF file at ``path`` (relative and `package://` meshes also resolve against its directory)."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as error:
        raise RobotModelError(f"cannot read the URDF file '{path}': {error}") from error
    return parse_urdf(text, os.path.dirname(os.path.abspath(path)), search_paths)
