"""Scene composition: a robot from the library placed in a closed, textured room with a table, photographs, objects.

The room is closed (floor, four walls, ceiling) so every pixel of every camera has a real surface and real depth.
All materials are matte (no specular, no reflectance) and lights are fixed in the world with no headlight, so a
surface point has the same colour from any viewpoint: the property that makes the two views geometrically consistent.
"""

from __future__ import annotations

import dataclasses
import re
import warnings

import mujoco
import numpy as np

from .assets import load_rgb, photographs, surface_textures
from .robots import HIDDEN_GROUP, RobotEntry, RobotLoadError, load_robot, mujoco_warnings_to_log, scale_spec

TABLE_HEIGHT = 0.75
ROOM_HALF = 3.0
ROOM_HEIGHT = 2.6


@dataclasses.dataclass
class SceneConfig:
    """Randomisation ranges of one scene.

    Attributes:
        robot_scale: uniform scale range of the robot (the paper's compositing scales robots too).
        robot_yaw_deg: range of the robot's rotation about the vertical axis, relative to facing the cameras' side.
        num_objects: inclusive range of how many loose objects stand on the table.
        photographs: hang real photographs on the walls.
        light_intensity: range of the diffuse strength of the key light (fill lights are dimmer).
        ambient: range of the ambient light level.
        msaa_samples: multisample anti-aliasing of the colour pass; 4 smooths edges but doubles its cost under
            llvmpipe (~35 -> ~80 ms per 240x320 frame here).
        robot_tint: range of the strength of a random colour multiplied into the robot's materials, per scene
            (0: the robot file's own colours). A robot model's materials rarely match the real robot, so data with
            the robot's true appearance different from its model's shows whether colour comes from the source view.
    """

    robot_scale: tuple[float, float] = (0.85, 1.15)
    robot_yaw_deg: tuple[float, float] = (-30.0, 30.0)
    num_objects: tuple[int, int] = (1, 3)
    photographs: bool = True
    light_intensity: tuple[float, float] = (0.5, 0.8)
    ambient: tuple[float, float] = (0.3, 0.5)
    msaa_samples: int = 0
    robot_tint: tuple[float, float] = (0.2, 0.7)


@dataclasses.dataclass
class Scene:
    """A compiled scene.

    Attributes:
        model, data: the MuJoCo model and its state.
        entry: the robot's library entry.
        robot_qpos_adr: (J,) qpos addresses of the robot's hinge/slide joints.
        joint_names: (J,) their names in the robot's own description (without the scene's "robot/" prefix).
        joint_range: (J, 2) their limits.
        default_qpos: (J,) the default pose, inside the limits.
        mask_geom_ids: geom ids that count as robot-and-object in masks.
        description: words for the caption ("on a light wood table in a room with white brick walls").
        info: scene metadata (textures, photographs, scale, yaw, objects, robot tint).
        T_world_base: (4, 4) the robot's base frame in the world: the frame of its description's root (a URDF's root
            link, an MJCF's world frame), fixed whatever the joints do (a mobile base's slides move the bodies).
    """

    model: mujoco.MjModel
    data: mujoco.MjData
    entry: RobotEntry
    robot_qpos_adr: np.ndarray
    joint_range: np.ndarray
    default_qpos: np.ndarray
    mask_geom_ids: np.ndarray
    description: str
    info: dict
    T_world_base: np.ndarray
    joint_names: list[str]


def _texture_name(path: str) -> str:
    """Words for a caption from a texture or photo file name: "light_wood_v2.png" -> "light wood"."""
    stem = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return re.sub(r"(_v\d+|\d+)$", "", stem).replace("_", " ").replace("-", " ").strip()


def _add_image_material(spec: mujoco.MjSpec, name: str, path: str, repeat: tuple[float, float], uniform: bool) -> None:
    """A matte material whose colour is the image at ``path`` (decoded here: MuJoCo itself reads only PNG)."""
    image = load_rgb(path)
    tex = spec.add_texture(
        name=name, type=mujoco.mjtTexture.mjTEXTURE_2D, width=image.shape[1], height=image.shape[0], nchannel=3
    )
    tex.data = image.tobytes()
    mat = spec.add_material(
        name=name, texrepeat=list(repeat), texuniform=uniform, specular=0.0, shininess=0.0, reflectance=0.0
    )
    mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = name


def _matte(spec: mujoco.MjSpec) -> None:
    """Remove view-dependent shading from every material (specular highlights, reflections). Geoms without a
    material keep MuJoCo's default specular, which the lights' zero specular colour cancels."""
    for mat in spec.materials:
        mat.specular = 0.0
        mat.shininess = 0.0
        mat.reflectance = 0.0


def _box(body: mujoco.MjsBody, name: str, pos, size, material: str = "", rgba=None) -> mujoco.MjsGeom:
    geom = body.add_geom(name=name, type=mujoco.mjtGeom.mjGEOM_BOX, pos=list(pos), size=list(size), group=1)
    if material:
        geom.material = material
    if rgba is not None:
        geom.rgba = list(rgba)
    return geom


def build_scene(robot: str, rng: np.random.Generator, config: SceneConfig | None = None) -> Scene:
    """Compose and compile a scene around robot ``robot`` with randomness from ``rng``.

    Raises:
        KeyError for an unknown robot; robots.RobotLoadError (naming it) when its assets do not load.
    """
    with mujoco_warnings_to_log():
        try:
            return _build_scene(robot, rng, config or SceneConfig())
        except ValueError as error:  # MuJoCo's compile errors; everything else here is generated, not loaded
            raise RobotLoadError(f"robot '{robot}' failed to compile in the scene: {error}") from error


def _build_scene(robot: str, rng: np.random.Generator, config: SceneConfig) -> Scene:
    entry, robot_spec = load_robot(robot)
    scale = float(rng.uniform(*config.robot_scale))
    scale_spec(robot_spec, scale)
    if config.num_objects[1] > 0:
        _add_contact_proxies(robot_spec)

    spec = mujoco.MjSpec()
    spec.compiler.degree = False
    spec.option.timestep = 0.004
    spec.visual.headlight.active = 0
    spec.visual.headlight.ambient = [0.0, 0.0, 0.0]
    spec.visual.headlight.diffuse = [0.0, 0.0, 0.0]
    spec.visual.headlight.specular = [0.0, 0.0, 0.0]
    spec.visual.quality.offsamples = config.msaa_samples
    spec.visual.map.znear = 0.01
    spec.visual.map.zfar = 50.0
    spec.stat.extent = 1.0

    textures = list(surface_textures())
    photos = list(photographs()) if config.photographs else []
    info: dict = {"robot_scale": scale}
    world = spec.worldbody

    if textures:
        floor_tex, table_tex, wall_tex = (textures[i] for i in rng.choice(len(textures), 3, replace=False))
        _add_image_material(spec, "floor", floor_tex, (1.0, 1.0), True)
        _add_image_material(spec, "table", table_tex, (2.0, 2.0), True)
        _add_image_material(spec, "wall", wall_tex, (0.8, 0.8), True)
        mats = ("floor", "table", "wall")
        info.update(floor=_texture_name(floor_tex), table=_texture_name(table_tex), wall=_texture_name(wall_tex))
    else:
        warnings.warn("no surface textures found (robosuite not installed): the room is plain grey")
        mats = ("", "", "")
        info.update(floor="grey", table="grey", wall="grey")

    # the room: boxes rather than planes so they have depth and two faces
    t = 0.05
    _box(world, "floor", (0, 0, -t), (ROOM_HALF, ROOM_HALF, t), mats[0], (0.6, 0.6, 0.6, 1))
    _box(world, "ceiling", (0, 0, ROOM_HEIGHT + t), (ROOM_HALF, ROOM_HALF, t), "", (0.85, 0.85, 0.85, 1))
    for i, (x, y, sx, sy) in enumerate(
        [
            (ROOM_HALF + t, 0, t, ROOM_HALF),
            (-ROOM_HALF - t, 0, t, ROOM_HALF),
            (0, ROOM_HALF + t, ROOM_HALF, t),
            (0, -ROOM_HALF - t, ROOM_HALF, t),
        ]
    ):
        _box(world, f"wall{i}", (x, y, ROOM_HEIGHT / 2), (sx, sy, ROOM_HEIGHT / 2), mats[2], (0.7, 0.7, 0.7, 1))

    # photographs: thin boxes just in front of each wall, facing the room
    info["photographs"] = []
    if photos:
        for i, wall in enumerate(range(4)):
            path = photos[int(rng.integers(len(photos)))]
            image = load_rgb(path)
            aspect = image.shape[1] / image.shape[0]
            half_h = float(rng.uniform(0.5, 0.8))
            half_w = min(half_h * aspect, ROOM_HALF - 0.2)
            name = f"photo{i}"
            _add_image_material(spec, name, path, (1.0, 1.0), False)
            along = float(rng.uniform(-ROOM_HALF + half_w + 0.1, ROOM_HALF - half_w - 0.1))
            z = float(rng.uniform(1.0, 1.5))
            d = ROOM_HALF - 0.01
            if wall == 0:
                body = world.add_body(pos=[d, along, z], quat=_yaw_quat(np.pi / 2))
            elif wall == 1:
                body = world.add_body(pos=[-d, along, z], quat=_yaw_quat(-np.pi / 2))
            elif wall == 2:
                body = world.add_body(pos=[along, d, z], quat=_yaw_quat(np.pi))
            else:
                body = world.add_body(pos=[along, -d, z], quat=_yaw_quat(0.0))
            # a 2D texture on a box face spans the face once with texuniform off; -y face points into the room
            _box(body, name, (0, 0, 0), (half_w, 0.005, half_h), name)
            info["photographs"].append(_texture_name(path))

    # table in front of (or under) the robot, robot facing +x
    table_top = TABLE_HEIGHT
    half = (0.45, 0.6)
    table_x = 0.45 if entry.mount == "table" else 0.65
    _box(world, "table_top", (table_x, 0, table_top - 0.025), (half[0], half[1], 0.025), mats[1], (0.5, 0.4, 0.3, 1))
    for sx in (-1, 1):
        for sy in (-1, 1):
            _box(
                world,
                f"table_leg{sx}{sy}",
                (table_x + sx * (half[0] - 0.05), sy * (half[1] - 0.05), (table_top - 0.05) / 2),
                (0.03, 0.03, (table_top - 0.05) / 2),
                mats[1],
                (0.4, 0.3, 0.2, 1),
            )

    # lights fixed in the world: a key light and two fills, directional so shading is smooth and view-independent
    key = float(rng.uniform(*config.light_intensity))
    ambient = float(rng.uniform(*config.ambient))
    for i in range(3):
        azim = float(rng.uniform(0, 2 * np.pi))
        elev = float(rng.uniform(np.deg2rad(40), np.deg2rad(80)))
        direction = -np.array([np.cos(elev) * np.cos(azim), np.cos(elev) * np.sin(azim), np.sin(elev)])
        strength = key if i == 0 else key * float(rng.uniform(0.3, 0.5))
        tint = rng.uniform(0.9, 1.0, 3)
        world.add_light(
            name=f"light{i}",
            type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL,
            pos=[0, 0, 2.5],
            dir=direction.tolist(),
            diffuse=(strength * tint).tolist(),
            specular=[0, 0, 0],
            ambient=[ambient] * 3 if i == 0 else [0, 0, 0],
            castshadow=False,
        )
    info["light"] = key

    # the robot, rotated about z and standing on the table or the floor
    yaw = float(np.deg2rad(rng.uniform(*config.robot_yaw_deg)))
    base_z = (table_top if entry.mount == "table" else 0.0) + entry.base_height * scale
    if entry.pedestal:
        world.add_geom(
            name="pedestal",
            type=mujoco.mjtGeom.mjGEOM_CYLINDER,
            size=[0.18 * scale, base_z / 2, 0],
            pos=[0.0, 0.0, base_z / 2],
            rgba=[0.25, 0.25, 0.27, 1],
            group=1,
        )
    frame = world.add_frame(pos=[0.0, 0.0, base_z], quat=_yaw_quat(yaw))
    T_world_base = np.eye(4)
    T_world_base[:3, :3] = [[np.cos(yaw), -np.sin(yaw), 0.0], [np.sin(yaw), np.cos(yaw), 0.0], [0.0, 0.0, 1.0]]
    T_world_base[:3, 3] = [0.0, 0.0, base_z]
    root = robot_spec.worldbody.first_body()
    frame.attach_body(root, "robot/", "")
    info["robot_yaw_deg"] = float(np.rad2deg(yaw))

    # loose objects on the table, in front of the robot where it can reach them
    n_obj = int(rng.integers(config.num_objects[0], config.num_objects[1] + 1))
    info["objects"] = []
    placed: list[tuple[float, float, float]] = []
    for i in range(n_obj):
        kind = ["box", "cylinder", "sphere"][int(rng.integers(3))]
        size = float(rng.uniform(0.025, 0.05))
        for _ in range(20):  # objects must not start inside each other (physics would fling them apart)
            x = float(rng.uniform(0.3, 0.7)) * scale + (table_x - 0.45)
            y = float(rng.uniform(-0.35, 0.35))
            if all(np.hypot(x - px, y - py) > 1.8 * (size + psize) for px, py, psize in placed):
                break
        placed.append((x, y, size))
        colour = rng.uniform(0.1, 0.95, 3)
        z = table_top + size + 0.001
        body = world.add_body(name=f"object{i}", pos=[x, y, z], quat=_yaw_quat(float(rng.uniform(0, np.pi))))
        body.add_freejoint()
        gtype = {
            "box": mujoco.mjtGeom.mjGEOM_BOX,
            "cylinder": mujoco.mjtGeom.mjGEOM_CYLINDER,
            "sphere": mujoco.mjtGeom.mjGEOM_SPHERE,
        }[kind]
        gsize = {"box": [size, size, size], "cylinder": [size, size, 0], "sphere": [size, 0, 0]}[kind]
        body.add_geom(
            name=f"object{i}",
            type=gtype,
            size=gsize,
            rgba=[*colour, 1.0],
            group=1,
            mass=0.1,
            contype=_OBJECT_BITS[0],
            conaffinity=_OBJECT_BITS[1],
        )
        info["objects"].append(f"{_colour_word(colour)} {kind}")

    _matte(spec)
    model = spec.compile()
    data = mujoco.MjData(model)
    # drawn from a child generator: the scene's other random draws stay what they were before tinting existed
    info["robot_tint"] = _tint_robot(model, rng.spawn(1)[0], config.robot_tint)
    return _finish(model, data, entry, info, T_world_base)


def _tint_robot(model: mujoco.MjModel, rng: np.random.Generator, strength: tuple[float, float]) -> list[float]:
    """Multiply a random colour (strength drawn from ``strength``) into the robot's geom and material colours; the
    tint (3,) as a list. MuJoCo draws a geom with a material in the material's colour unless the geom's own rgba is
    not the default, so each geom's colour source is tinted once."""
    s = float(rng.uniform(*strength))
    tint = (1.0 - s) + s * rng.uniform(0.0, 1.0, 3)
    robot_bodies = {b for b in range(model.nbody) if model.body(b).name.startswith("robot/")}
    materials = set()
    for g in range(model.ngeom):
        if model.geom_bodyid[g] not in robot_bodies:
            continue
        material = int(model.geom_matid[g])
        if material >= 0 and np.allclose(model.geom_rgba[g], _DEFAULT_GEOM_RGBA):
            materials.add(material)
        else:
            model.geom_rgba[g, :3] *= tint
    for material in materials:
        model.mat_rgba[material, :3] *= tint
    return [float(v) for v in tint]


_DEFAULT_GEOM_RGBA = (0.5, 0.5, 0.5, 1.0)


# contact bits: objects touch everything (table, room, robot proxies); robot proxies touch only objects
_OBJECT_BITS, _PROXY_BITS = (1 | 2, 1 | 2), (2, 0)


def _add_contact_proxies(robot_spec: mujoco.MjSpec) -> None:
    """Give the robot invisible boxes (one per visual geom: its bounding box) so it can push the loose objects.

    The robot's own collision meshes were dropped on load (their convex hulls cost ~10x the compile time); boxes
    are coarse but cheap, and only objects collide with them. Measured on a compiled copy of the robot (compiling a
    spec that is attached later, or the whole scene twice, breaks attached assets).
    """
    model = robot_spec.copy().compile()
    for g in range(model.ngeom):
        centre, half = model.geom_aabb[g, :3], model.geom_aabb[g, 3:]
        if model.geom_group[g] == HIDDEN_GROUP or np.min(half) <= 0:
            continue
        rotation = np.empty(9)
        mujoco.mju_quat2Mat(rotation, model.geom_quat[g])
        robot_spec.body(model.body(model.geom_bodyid[g]).name).add_geom(
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=half,
            pos=model.geom_pos[g] + rotation.reshape(3, 3) @ centre,
            quat=model.geom_quat[g],
            group=HIDDEN_GROUP,
            contype=_PROXY_BITS[0],
            conaffinity=_PROXY_BITS[1],
            mass=0,
            meshname="",
            material="",
        )  # not inherited from the body's default class


def _finish(
    model: mujoco.MjModel, data: mujoco.MjData, entry: RobotEntry, info: dict, T_world_base: np.ndarray
) -> Scene:
    """Find the robot's joints, limits and default pose and the mask geoms in a compiled scene."""
    joints = [
        j
        for j in range(model.njnt)
        if model.joint(j).name.startswith("robot/")
        and int(model.jnt_type[j]) in (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
    ]
    if not joints:
        raise ValueError(f"robot '{entry.name}' has no hinge or slide joints to move")
    adr = model.jnt_qposadr[joints]
    ranges = model.jnt_range[joints].copy()
    unlimited = ~model.jnt_limited[joints].astype(bool) | (ranges[:, 1] <= ranges[:, 0])
    ranges[unlimited] = [-np.pi, np.pi]
    default = np.array([entry.default_qpos.get(model.joint(j).name[len("robot/") :], 0.0) for j in joints])
    default = np.clip(default, ranges[:, 0], ranges[:, 1])
    data.qpos[adr] = default
    mujoco.mj_forward(model, data)

    robot_bodies = {b for b in range(model.nbody) if model.body(b).name.startswith("robot/")}
    object_bodies = {b for b in range(model.nbody) if model.body(b).name.startswith("object")}
    _move_objects_off_robot(model, data, robot_bodies, object_bodies)
    visible = model.geom_group != HIDDEN_GROUP
    mask_geoms = np.array(
        [
            g
            for g in range(model.ngeom)
            if visible[g] and (model.geom_bodyid[g] in robot_bodies or model.geom_bodyid[g] in object_bodies)
        ]
    )
    info["description"] = f"on a {info['table']} table in a room with {info['wall']} walls and a {info['floor']} floor"
    if info["objects"]:
        things = [f"a {name}" for name in info["objects"]]
        listed = f"{', '.join(things[:-1])} and {things[-1]}" if len(things) > 1 else things[0]
        info["description"] += f", next to {listed}"
    names = [model.joint(j).name[len("robot/") :] for j in joints]
    return Scene(model, data, entry, adr, ranges, default, mask_geoms, info["description"], info, T_world_base, names)


def _move_objects_off_robot(
    model: mujoco.MjModel,
    data: mujoco.MjData,
    robot_bodies: set[int],
    object_bodies: set[int],
    step: float = 0.05,
    tries: int = 12,
) -> None:
    """Slide objects that start inside the robot (at its default pose) away from the robot base, so physics does
    not fling them out of the interpenetration."""
    for _ in range(tries):
        stuck = {
            b
            for c in data.contact[: data.ncon]
            for b in (model.geom_bodyid[c.geom1], model.geom_bodyid[c.geom2])
            if b in object_bodies and ({model.geom_bodyid[c.geom1], model.geom_bodyid[c.geom2]} & robot_bodies)
        }
        if not stuck:
            return
        for body in stuck:
            adr = model.jnt_qposadr[model.body_jntadr[body]]
            away = data.qpos[adr : adr + 2]  # the robot base stands on the world origin
            data.qpos[adr : adr + 2] += step * away / max(np.linalg.norm(away), 1e-6)
        mujoco.mj_forward(model, data)


def robot_geom_ids(scene: Scene) -> np.ndarray:
    """Visible geom ids (K,) of the robot alone (without the loose objects)."""
    robot_bodies = {b for b in range(scene.model.nbody) if scene.model.body(b).name.startswith("robot/")}
    return np.array([g for g in scene.mask_geom_ids if scene.model.geom_bodyid[g] in robot_bodies])


def _yaw_quat(yaw: float) -> list[float]:
    return [float(np.cos(yaw / 2)), 0.0, 0.0, float(np.sin(yaw / 2))]


def _colour_word(rgb: np.ndarray) -> str:
    """A rough colour name for a caption."""
    names = {
        "red": (0.8, 0.15, 0.15),
        "green": (0.2, 0.7, 0.2),
        "blue": (0.2, 0.3, 0.8),
        "yellow": (0.85, 0.8, 0.2),
        "orange": (0.9, 0.5, 0.1),
        "purple": (0.55, 0.25, 0.7),
        "cyan": (0.2, 0.75, 0.8),
        "white": (0.9, 0.9, 0.9),
        "grey": (0.5, 0.5, 0.5),
        "black": (0.12, 0.12, 0.12),
        "pink": (0.9, 0.5, 0.7),
    }
    return min(names, key=lambda n: float(np.sum((np.array(names[n]) - rgb) ** 2)))
