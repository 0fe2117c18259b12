"""The robot library: morphologies built from meshes shipped inside PyPI wheels, loaded as MuJoCo specs.

Every entry becomes an ``MjSpec`` whose root body is the robot base, with a gripper attached where the arm has none,
collision geoms removed (they z-fight with the visual meshes; builders mark them with :data:`HIDDEN_GROUP`), and a
default pose per joint.
Joint ranges are read from the compiled model. Robots are kinematic in the synthesis: joints are set, not simulated.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import warnings
from typing import Callable, Iterator

import mujoco
import numpy as np

from .assets import asset_path

_LOG = logging.getLogger(__name__)
# geom group marking collision meshes and helper shapes: removed on load, never drawn
HIDDEN_GROUP = 3
# morphologies seen only in the test split (a test sample never shows a training morphology)
TEST_ROBOTS = ("kinova3", "xarm6_bullet", "fetch", "inspire_hand")


@dataclasses.dataclass(frozen=True)
class RobotEntry:
    """One entry of the library (entries from different wheels may share a morphology, see :data:`MORPHOLOGY`).

    Attributes:
        name: library name (also the caption's robot name unless ``display_name`` is set).
        source: the wheel its meshes come from.
        build: returns the robot as an MjSpec (root body = robot base at the origin, facing +x), collision geoms in
            :data:`HIDDEN_GROUP`.
        default_qpos: default angle/position per joint name (joints not listed default to 0 clipped into range).
        mount: "table" (base on the table top) or "floor" (standing robots, table in front of them).
        base_height: height of the base above the table top or floor (robots whose root is a pelvis or an arm
            mount); scaled with the robot.
        pedestal: stand the base on a grey pedestal of that height (robosuite mounts are not part of the robot).
        display_name: human-readable name for captions.
        kind: short morphology description for captions ("7-DoF arm", "humanoid", ...).
        urdf: (package, *path) of the URDF the robot is built from, for URDF entries: a robot model outside the data
            engine (`model.robot.RobotModel`) reads the same file.
    """

    name: str
    source: str
    build: Callable[[], mujoco.MjSpec]
    default_qpos: dict[str, float]
    mount: str = "table"
    base_height: float = 0.0
    pedestal: bool = False
    display_name: str = ""
    kind: str = "robot arm"
    urdf: tuple[str, ...] = ()


def _hide_collision_geoms(spec: mujoco.MjSpec, visual_groups: tuple[int, ...] = (1,)) -> None:
    """Move geoms outside ``visual_groups`` (collision shapes) to :data:`HIDDEN_GROUP`, the rest to group 1."""
    for geom in spec.geoms:
        geom.group = 1 if geom.group in visual_groups else HIDDEN_GROUP


def _strip_to_body(spec: mujoco.MjSpec, root_body: str, source: str) -> None:
    """Keep only ``root_body`` (and its subtree) of a task scene: drop other bodies, world geoms, constraints."""
    if spec.body(root_body) is None:
        raise ValueError(f"{source}: no body '{root_body}'")
    for equality in list(spec.equalities):  # mocap welds refer to bodies removed below
        spec.delete(equality)
    for body in list(spec.worldbody.bodies):
        if body.name != root_body:
            spec.delete(body)
    for element in list(spec.worldbody.geoms) + list(spec.worldbody.sites) + list(spec.worldbody.lights):
        spec.delete(element)
    for actuator in list(spec.actuators):  # they may drive joints of deleted bodies; the synthesis is kinematic
        spec.delete(actuator)
    for sensor in list(spec.sensors):
        spec.delete(sensor)
    for tendon in list(spec.tendons):
        spec.delete(tendon)


def _load_mjcf(path: str) -> mujoco.MjSpec:
    """Load an MJCF file, repairing what current MuJoCo rejects in some wheels' files: a repeated mesh name (the first
    definition is kept: robosuite's robotiq 85 names a missing file second) and ``group`` on a <default> element."""
    with open(path) as f:
        original = f.read()
    seen: set[str] = set()

    def first_only(match: re.Match) -> str:
        if match.group(1) in seen:
            return ""
        seen.add(match.group(1))
        return match.group(0)

    text = re.sub(r'\s*<mesh\s+name="([^"]+)"[^>]*/>', first_only, original)
    text = re.sub(r'(<default\s+class="[^"]*")\s+group="[^"]*"', r"\1", text)
    if text == original:
        return mujoco.MjSpec.from_file(path)
    spec = mujoco.MjSpec.from_string(text)
    spec.meshdir = os.path.join(os.path.dirname(path), spec.meshdir)
    spec.texturedir = os.path.join(os.path.dirname(path), spec.texturedir)
    return spec


def _robosuite_gripper(spec: mujoco.MjSpec, body_name: str, gripper: str, index: int, source: str) -> None:
    body = spec.body(body_name)
    if body is None:
        raise ValueError(f"{source}: no body '{body_name}' to attach the gripper to")
    grip = _load_mjcf(asset_path("robosuite", "models", "assets", "grippers", f"{gripper}.xml"))
    body.add_frame().attach_body(grip.worldbody.first_body(), f"gripper{index}_", "")


def _robosuite(robot: str, grippers: dict[str, str]) -> Callable[[], mujoco.MjSpec]:
    """Loader for a robosuite robot with a robosuite gripper xml on each named hand body."""

    def build() -> mujoco.MjSpec:
        spec = _load_mjcf(asset_path("robosuite", "models", "assets", "robots", robot, "robot.xml"))
        for i, (hand, gripper) in enumerate(grippers.items()):
            _robosuite_gripper(spec, hand, gripper, i, f"robosuite {robot}")
        _hide_collision_geoms(spec)
        return spec

    return build


def _gripper_only(gripper: str) -> Callable[[], mujoco.MjSpec]:
    """A robosuite gripper or hand on a short vertical post (the paper's "small grippers")."""

    def build() -> mujoco.MjSpec:
        spec = mujoco.MjSpec()
        spec.compiler.degree = False
        post = spec.worldbody.add_body(name="base")
        post.add_geom(
            type=mujoco.mjtGeom.mjGEOM_CYLINDER,
            size=[0.035, 0.15, 0],
            pos=[0, 0, 0.15],
            rgba=[0.3, 0.3, 0.32, 1],
            group=1,
        )
        mount = post.add_body(name="mount", pos=[0, 0, 0.3])
        _robosuite_gripper(spec, "mount", gripper, 0, f"gripper {gripper}")
        # a wrist joint so a bare gripper moves as well as opens
        mount.add_joint(name="wrist_yaw", type=mujoco.mjtJoint.mjJNT_HINGE, axis=[0, 0, 1], range=[-np.pi, np.pi])
        mount.add_joint(name="wrist_pitch", type=mujoco.mjtJoint.mjJNT_HINGE, axis=[0, 1, 0], range=[-0.6, 0.6])
        _hide_collision_geoms(spec)
        return spec

    return build


def _load_whole_obj_meshes(spec: mujoco.MjSpec, meshdir: str) -> None:
    """Give MuJoCo every object of multi-object OBJ files as user vertices and faces: its OBJ decoder keeps only the
    first object (pybullet_data's franka_panda visual link5.obj: 250 of 18,327 faces, most of the arm missing)."""
    from model.robot.meshes import load_mesh_file, obj_object_count

    for mesh in spec.meshes:
        path = os.path.join(meshdir, mesh.file)
        if mesh.file.lower().endswith(".obj") and obj_object_count(path) > 1:
            whole = load_mesh_file(path)
            mesh.file = ""
            mesh.uservert = whole.vertices.ravel().tolist()
            mesh.userface = whole.faces.ravel().tolist()


def _urdf(package: str, *parts: str) -> Callable[[], mujoco.MjSpec]:
    """Loader for a URDF shipped in a wheel: ``package://`` stripped, a <mujoco> compiler element with meshdir."""

    def build() -> mujoco.MjSpec:
        path = asset_path(package, *parts)
        with open(path) as f:
            text = f.read().replace("package://", "")  # paths then resolve against the URDF's directory
        mujoco_tag = (
            f'<mujoco><compiler meshdir="{os.path.dirname(path)}" discardvisual="false" '
            'balanceinertia="true" strippath="false" fusestatic="false"/></mujoco>'
        )
        text = re.sub(r"(<robot[^>]*>)", lambda m: m.group(1) + mujoco_tag, text, count=1)
        spec = mujoco.MjSpec.from_string(text)
        _load_whole_obj_meshes(spec, os.path.dirname(path))
        # URDF visuals come in with contype = conaffinity = 0, collisions with contacts enabled
        has_visuals = any(g.contype == 0 and g.conaffinity == 0 for g in spec.geoms)
        for geom in spec.geoms:
            is_visual = geom.contype == 0 and geom.conaffinity == 0
            geom.group = 1 if (is_visual or not has_visuals) else HIDDEN_GROUP
        return spec

    return build


def _mjcf(
    package: str,
    *parts: str,
    root_body: str | None = None,
    visual_groups: tuple[int, ...] = (0, 1),
    mesh_only: bool = False,
) -> Callable[[], mujoco.MjSpec]:
    """Loader for an MJCF file shipped in a wheel; ``root_body`` picks the robot out of a task scene.

    ``mesh_only`` hides primitive geoms (these files model collision shapes as primitives beside visual meshes).
    """

    def build() -> mujoco.MjSpec:
        spec = mujoco.MjSpec.from_file(asset_path(package, *parts))
        if root_body is not None:
            _strip_to_body(spec, root_body, "/".join(parts))
        _hide_collision_geoms(spec, visual_groups)
        if mesh_only:
            for geom in spec.geoms:
                if geom.type != mujoco.mjtGeom.mjGEOM_MESH:
                    geom.group = HIDDEN_GROUP
        return spec

    return build


def _jaco_dm_control() -> mujoco.MjSpec:
    """dm_control's Kinova Jaco arm with its three-finger hand on the wrist site."""
    arm = mujoco.MjSpec.from_file(asset_path("dm_control", "third_party", "kinova", "jaco_arm.xml"))
    hand = mujoco.MjSpec.from_file(asset_path("dm_control", "third_party", "kinova", "jaco_hand.xml"))
    site = arm.site("wristsite")
    if site is None:
        raise ValueError("dm_control jaco_arm.xml: no 'wristsite' to attach the hand to")
    frame = site.parent.add_frame(pos=site.pos, quat=site.quat)
    frame.attach_body(hand.worldbody.first_body(), "hand_", "")
    _hide_collision_geoms(arm, (0, 1))
    return arm


_PI = float(np.pi)
_PANDA_URDF = ("pybullet_data", "franka_panda", "panda.urdf")
_XARM6_URDF = ("pybullet_data", "xarm", "xarm6_with_gripper.urdf")


def _arm(names: list[str], values: list[float]) -> dict[str, float]:
    return dict(zip(names, values))


_J7 = [f"joint{i}" for i in range(1, 8)]
_ROBOSUITE_RIGHT = [f"right_j{i}" for i in range(7)]
LIBRARY: dict[str, RobotEntry] = {
    entry.name: entry
    for entry in [
        # robosuite arms with their default grippers
        RobotEntry(
            "panda",
            "robosuite",
            _robosuite("panda", {"right_hand": "panda_gripper"}),
            _arm(_J7, [0, _PI / 16, 0, -_PI / 2 - _PI / 3, 0, _PI - 0.2, _PI / 4]),
            display_name="Franka Panda",
            kind="7-DoF arm with a parallel gripper",
        ),
        RobotEntry(
            "sawyer",
            "robosuite",
            _robosuite("sawyer", {"right_hand": "rethink_gripper"}),
            _arm(_ROBOSUITE_RIGHT, [0, -1.18, 0, 2.18, 0, 0.57, -1.57]),
            display_name="Rethink Sawyer",
            kind="7-DoF arm with an electric gripper",
        ),
        RobotEntry(
            "iiwa",
            "robosuite",
            _robosuite("iiwa", {"right_hand": "robotiq_gripper_140"}),
            _arm([f"joint{i}" for i in range(1, 8)], [0, 0.65, 0, -1.89, 0, 0.6, 0]),
            display_name="KUKA LBR iiwa",
            kind="7-DoF arm with a Robotiq 140 gripper",
        ),
        RobotEntry(
            "jaco",
            "robosuite",
            _robosuite("jaco", {"right_hand": "jaco_three_finger_gripper"}),
            _arm([f"j2s7s300_joint_{i}" for i in range(1, 8)], [3.192, 3.680, 0, 1.170, 0.050, 3.760, 3.142]),
            display_name="Kinova Jaco",
            kind="7-DoF arm with a three-finger hand",
        ),
        RobotEntry(
            "kinova3",
            "robosuite",
            _robosuite("kinova3", {"right_hand": "robotiq_gripper_85"}),
            _arm([f"joint_{i}" for i in range(1, 8)], [0, 0.65, 0, 1.89, 0, 0.6, -_PI / 2]),
            display_name="Kinova Gen3",
            kind="7-DoF arm with a Robotiq 85 gripper",
        ),
        RobotEntry(
            "ur5e",
            "robosuite",
            _robosuite("ur5e", {"right_hand": "robotiq_gripper_85"}),
            _arm(
                [
                    "shoulder_pan_joint",
                    "shoulder_lift_joint",
                    "elbow_joint",
                    "wrist_1_joint",
                    "wrist_2_joint",
                    "wrist_3_joint",
                ],
                [-0.470, -1.735, 2.480, -2.275, -1.590, -1.991],
            ),
            display_name="Universal Robots UR5e",
            kind="6-DoF arm with a Robotiq 85 gripper",
        ),
        RobotEntry(
            "xarm7",
            "robosuite",
            _robosuite("xarm7", {"right_hand": "xarm7_gripper"}),
            _arm([f"joint{i}" for i in range(1, 8)], [0, 0, 0, 0.39 * _PI, 0, 0.39 * _PI, 0]),
            display_name="UFactory xArm 7",
            kind="7-DoF arm with a parallel gripper",
        ),
        RobotEntry(
            "spot_arm",
            "robosuite",
            _robosuite("spot_arm", {"right_hand": "bd_gripper"}),
            _arm(["arm_sh0", "arm_sh1", "arm_el0", "arm_el1", "arm_wr0", "arm_wr1"], [0, -1.2, 1.85, 0, 0.862, 0]),
            display_name="Boston Dynamics Spot arm",
            kind="6-DoF arm with a claw gripper",
        ),
        RobotEntry(
            "baxter",
            "robosuite",
            _robosuite("baxter", {"right_hand": "rethink_gripper", "left_hand": "rethink_gripper"}),
            _arm(
                [f"right_j{i}" for i in range(7)] + [f"left_j{i}" for i in range(7)],
                [
                    0.403,
                    -0.636,
                    0.114,
                    1.432,
                    0.735,
                    1.205,
                    -0.269,
                    -0.403,
                    -0.636,
                    -0.114,
                    1.432,
                    -0.735,
                    1.205,
                    0.269,
                ],
            ),
            mount="floor",
            base_height=0.92,
            pedestal=True,
            display_name="Rethink Baxter",
            kind="dual-arm robot",
        ),
        RobotEntry(
            "gr1",
            "robosuite",
            _robosuite("gr1", {}),
            _arm(["r_shoulder_roll", "r_elbow_pitch", "l_shoulder_roll", "l_elbow_pitch"], [-0.1, -1.57, 0.1, -1.57]),
            mount="floor",
            base_height=0.97,
            display_name="Fourier GR1",
            kind="humanoid",
        ),
        RobotEntry(
            "tiago",
            "robosuite",
            _robosuite("tiago", {"right_hand": "robotiq_gripper_85", "left_hand": "robotiq_gripper_85"}),
            _arm(
                ["arm_right_1_joint", "arm_right_4_joint", "arm_left_1_joint", "arm_left_4_joint"], [0.4, 1.5, 0.4, 1.5]
            ),
            mount="floor",
            display_name="PAL TIAGo++",
            kind="dual-arm mobile manipulator",
        ),
        # small grippers and hands on a post
        RobotEntry(
            "robotiq140",
            "robosuite",
            _gripper_only("robotiq_gripper_140"),
            {},
            display_name="Robotiq 2F-140",
            kind="parallel gripper",
        ),
        RobotEntry(
            "inspire_hand",
            "robosuite",
            _gripper_only("inspire_right_hand"),
            {},
            display_name="Inspire hand",
            kind="dexterous hand",
        ),
        # other wheels
        RobotEntry(
            "panda_bullet",
            "pybullet",
            _urdf(*_PANDA_URDF),
            _arm([f"panda_joint{i}" for i in range(1, 8)], [0, -0.3, 0, -2.2, 0, 2.0, 0.8]),
            display_name="Franka Panda",
            kind="7-DoF arm with a parallel gripper",
            urdf=_PANDA_URDF,
        ),
        RobotEntry(
            "xarm6_bullet",
            "pybullet",
            _urdf(*_XARM6_URDF),
            _arm([f"joint{i}" for i in range(1, 7)], [0, -0.5, -0.5, 0, 1.0, 0]),
            display_name="UFactory xArm 6",
            kind="6-DoF arm with a parallel gripper",
            urdf=_XARM6_URDF,
        ),
        RobotEntry(
            "jaco_dm_control",
            "dm_control",
            _jaco_dm_control,
            _arm([f"joint_{i}" for i in range(1, 7)], [0, 3.6, 1.2, 0, 1.0, 0]),
            display_name="Kinova Jaco",
            kind="6-DoF arm with a three-finger hand",
        ),
        RobotEntry(
            "fetch",
            "gymnasium_robotics",
            _mjcf(
                "gymnasium_robotics",
                "envs",
                "assets",
                "fetch",
                "reach.xml",
                root_body="robot0:base_link",
                mesh_only=True,
            ),
            _arm(
                ["robot0:shoulder_lift_joint", "robot0:elbow_flex_joint", "robot0:wrist_flex_joint"], [-0.6, 1.2, 0.9]
            ),
            mount="floor",
            display_name="Fetch",
            kind="mobile manipulator",
        ),
        RobotEntry(
            "shadow_hand",
            "gymnasium_robotics",
            _mjcf(
                "gymnasium_robotics",
                "envs",
                "assets",
                "hand",
                "reach.xml",
                root_body="robot0:hand mount",
                mesh_only=True,
            ),
            {},
            display_name="Shadow Dexterous Hand",
            kind="five-finger robot hand",
        ),
        RobotEntry(
            "sawyer_metaworld",
            "metaworld",
            _mjcf("metaworld", "assets", "sawyer_xyz", "sawyer_reach_v3.xml", root_body="base", mesh_only=True),
            _arm([f"right_j{i}" for i in range(7)], [0, -1.18, 0, 2.18, 0, 0.57, 3.3]),
            display_name="Rethink Sawyer",
            kind="7-DoF arm with a parallel gripper",
        ),
    ]
}
# morphology of each entry (entries built from different wheels can share one); the split is by morphology
MORPHOLOGY = {
    name: {"panda_bullet": "panda", "jaco_dm_control": "jaco", "sawyer_metaworld": "sawyer"}.get(name, name)
    for name in LIBRARY
}


def robot_names(split: str | None = None) -> list[str]:
    """Library names, optionally only those of a split: "test" holds the :data:`TEST_ROBOTS` morphologies, "train"
    every other one (an entry shares its split with every entry of the same morphology)."""
    if split not in (None, "train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    names = sorted(LIBRARY)
    if split is None:
        return names
    return [n for n in names if (MORPHOLOGY[n] in TEST_ROBOTS) == (split == "test")]


@contextlib.contextmanager
def mujoco_warnings_to_log() -> Iterator[None]:
    """Route MuJoCo's C-level warnings (attach conflicts between the robot file's options and the scene's, mesh
    notes) to this module's logger instead of stdout and a MUJOCO_LOG.TXT in the working directory."""
    previous = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(lambda message: _LOG.debug("mujoco: %s", message))
    try:
        with warnings.catch_warnings():  # the same conflicts come back from compile() as Python warnings
            warnings.filterwarnings("ignore", message="Attach conflict")
            warnings.filterwarnings("ignore", message="obj_decoder")  # meshes without texture coordinates: fine
            yield
    finally:
        mujoco.set_mju_user_warning(previous)


class RobotLoadError(RuntimeError):
    """A library robot whose assets failed to load (missing wheel or file, or MuJoCo rejected them)."""


def load_robot(name: str) -> tuple[RobotEntry, mujoco.MjSpec]:
    """The library entry and a freshly built spec of robot ``name``.

    Raises:
        KeyError for a name not in the library; RobotLoadError naming the robot and its wheel when its assets fail.
    """
    if name not in LIBRARY:
        raise KeyError(f"unknown robot '{name}'; known: {', '.join(sorted(LIBRARY))}")
    entry = LIBRARY[name]
    try:
        with mujoco_warnings_to_log():
            spec = entry.build()
    except (OSError, ValueError) as error:  # MuJoCo reports XML and mesh problems as ValueError
        raise RobotLoadError(f"robot '{name}' (from the {entry.source} wheel) failed to load: {error}") from error
    # the synthesis is kinematic: collision shapes would only z-fight with the visuals and cost compile time (convex
    # hulls: 2.6 s -> 0.25 s for Baxter)
    for geom in [g for g in spec.geoms if g.group == HIDDEN_GROUP]:
        spec.delete(geom)
    for geom in spec.geoms:  # visual meshes never collide (contacts with objects go through scene-added proxies)
        geom.contype, geom.conaffinity = 0, 0
    for element in list(spec.pairs) + list(spec.excludes):  # they name the deleted collision geoms
        spec.delete(element)
    used = {g.meshname for g in spec.geoms}
    for mesh in [m for m in spec.meshes if m.name not in used]:
        spec.delete(mesh)
    # floating bases (GR1's free joint) would fall under gravity while the objects' physics runs: bolt them down
    for joint in [j for j in spec.joints if j.type == mujoco.mjtJoint.mjJNT_FREE]:
        spec.delete(joint)
    # links whose mass came from the deleted shapes (and some wheels' massless links) still need a valid inertia
    spec.compiler.boundmass, spec.compiler.boundinertia = 1e-3, 1e-6
    return entry, spec


def available_robots(split: str | None = None) -> list[str]:
    """:func:`robot_names` minus the robots whose assets fail to load or compile, each skipped with a warning
    naming it (checked once per process)."""
    names = []
    for name in robot_names(split):
        if name not in _LOADABLE:
            try:
                _, spec = load_robot(name)
                try:
                    with mujoco_warnings_to_log():
                        spec.compile()
                except ValueError as error:
                    raise RobotLoadError(
                        f"robot '{name}' (from the {LIBRARY[name].source} wheel) does not compile: {error}"
                    ) from error
                _LOADABLE[name] = True
            except RobotLoadError as error:
                warnings.warn(f"skipping {error}")
                _LOADABLE[name] = False
        if _LOADABLE[name]:
            names.append(name)
    return names


_LOADABLE: dict[str, bool] = {}


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
