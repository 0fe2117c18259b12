"""The tabletop reach task: a Panda from the robot library, a red target cube and a blue distractor on a table, one
front camera that sees the arm, a Cartesian end-effector controller and a scripted expert.

Frames: the robot base sits at the world origin facing +x, so base frame = world frame; actions are end-effector
displacements (m) in that frame. Cameras use the optical convention of DESIGN.md (x right, y down, z forward;
``T_a_b`` maps points from b into a).

Why a kinematic Jacobian controller rather than mocap: the library robots are kinematic (joints are set, not
simulated), so a damped-least-squares step on the joint angles reaches the commanded Cartesian point exactly in a few
microseconds, with no physics to integrate; the arm's pose (what the camera sees) stays a real joint configuration.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering (llvmpipe here); must precede the mujoco import

import mujoco
import numpy as np

from model.geometry import OrbitTarget, invert_transform, target_transform
from offline_training.sim.camera import intrinsics, look_at
from offline_training.sim.robots import load_robot, mujoco_warnings_to_log

# the library's Franka Panda from the pybullet wheel: fewer mesh faces than the robosuite one, and decimated further
# below, because each llvmpipe render costs by the triangle (closed-loop evaluation is render-bound)
ROBOT = "panda_bullet"
# the URDF that library entry is built from: what the robot-aware view draws (a real robot's /robot_description)
ROBOT_URDF = ("pybullet_data", "franka_panda", "panda.urdf")
# the library robot's bodies and joints join the scene under this prefix
ROBOT_PREFIX = "robot_"
ARM_JOINTS = tuple(f"{ROBOT_PREFIX}panda_joint{i}" for i in range(1, 8))
EE_BODY = f"{ROBOT_PREFIX}panda_grasptarget"
# the Panda's "ready" pose: gripper pointing straight down above the table
HOME_QPOS = (0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785)
# the end effector hovers this far above the target cube's centre when the reach is done
HOVER_M = 0.06
# optical frame -> MuJoCo camera frame (MuJoCo cameras look down -z with y up)
_OPTICAL_TO_MUJOCO = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class TaskConfig:
    """Geometry and difficulty of the task.

    Attributes:
        image_size: side of the square image the policy sees.
        render_scale: the camera renders at image_size * render_scale and is area-downsampled (anti-aliasing; the
            warp also gets its source at this resolution).
        cube_half_m: half side of both cubes.
        object_x, object_y: range of the cubes' centres (m, base frame).
        min_separation_m: minimum distance between target and distractor.
        start_x, start_y, start_z: range of the end effector's start position.
        success_radius_m: the reach succeeds when the end effector is this close to the hover point.
        max_step_m: largest end-effector displacement per control step.
        max_steps: control steps per episode.
        camera_eye, camera_target: the training camera's position and the table point it looks at.
        fovy_deg: its vertical field of view.
        robot_mesh_faces: the robot's meshes are decimated to about this many triangles each (render cost; 4000
            keeps the arm's outline within the robot-aware test's tolerance of the URDF the robot layer draws).
    """

    image_size: int = 64
    render_scale: int = 2
    cube_half_m: float = 0.02
    object_x: tuple[float, float] = (0.40, 0.70)
    object_y: tuple[float, float] = (-0.25, 0.25)
    min_separation_m: float = 0.10
    start_x: tuple[float, float] = (0.35, 0.55)
    start_y: tuple[float, float] = (-0.20, 0.20)
    start_z: tuple[float, float] = (0.20, 0.30)
    success_radius_m: float = 0.02
    max_step_m: float = 0.07
    max_steps: int = 12
    camera_eye: tuple[float, float, float] = (1.25, 0.0, 0.65)
    camera_target: tuple[float, float, float] = (0.45, 0.0, 0.05)
    fovy_deg: float = 45.0
    robot_mesh_faces: int = 4000

    @property
    def render_size(self) -> int:
        return self.image_size * self.render_scale

    @property
    def pivot_m(self) -> float:
        """Distance from the training camera to the table point it looks at: the pivot of every camera orbit."""
        return float(np.linalg.norm(np.subtract(self.camera_target, self.camera_eye)))


@dataclass
class StartState:
    """Where an episode begins: cube centres (2, 3) [target, distractor] and the end effector's start (3,)."""

    cubes: np.ndarray
    ee_start: np.ndarray

    @property
    def goal(self) -> np.ndarray:
        return self.cubes[0] + np.array([0.0, 0.0, HOVER_M])


def sample_start_states(config: TaskConfig, count: int, rng: np.random.Generator) -> list[StartState]:
    """Random cube placements (target and distractor at least min_separation_m apart) and end-effector starts."""
    states = []
    for _ in range(count):
        while True:
            xy = np.stack([rng.uniform(*config.object_x, size=2), rng.uniform(*config.object_y, size=2)], axis=1)
            if np.linalg.norm(xy[0] - xy[1]) >= config.min_separation_m:
                break
        cubes = np.concatenate([xy, np.full((2, 1), config.cube_half_m)], axis=1)
        ee = np.array([rng.uniform(*config.start_x), rng.uniform(*config.start_y), rng.uniform(*config.start_z)])
        states.append(StartState(cubes=cubes, ee_start=ee))
    return states


def camera_pose(config: TaskConfig, yaw_deg: float = 0.0, pitch_deg: float = 0.0) -> np.ndarray:
    """``T_world_cam`` (4, 4) of the training camera orbited by (yaw, pitch) about the table point it looks at,
    with the geometry core's orbit convention (`model.geometry.target_transform`): yaw > 0 moves it right."""
    T_world_src = look_at(np.array(config.camera_eye), np.array(config.camera_target))
    return orbit_pose(T_world_src, OrbitTarget(yaw_deg=yaw_deg, pitch_deg=pitch_deg, pivot_m=config.pivot_m))


def orbit_pose(T_world_src: np.ndarray, target: OrbitTarget) -> np.ndarray:
    """``T_world_dst`` of an orbit target (e.g. from `ViewpointSampler`; pivot_m set) relative to the camera at
    T_world_src."""
    return T_world_src @ invert_transform(target_transform(target))


class ReachTask:
    """The scene, its renderer and the controller, for any number of parallel episodes (one MjData each).

    Args:
        config: the task geometry.
    """

    def __init__(self, config: TaskConfig | None = None) -> None:
        self.config = config = config or TaskConfig()
        self.model = _build_model(config)
        self._ee = self.model.body(EE_BODY).id
        self._arm_dofs = np.array([self.model.joint(name).dofadr[0] for name in ARM_JOINTS])
        self._arm_qpos = np.array([self.model.joint(name).qposadr[0] for name in ARM_JOINTS])
        self._arm_range = np.array([self.model.joint(name).range for name in ARM_JOINTS])
        self._cube_qpos = np.array([self.model.joint(n).qposadr[0] for n in ("target_free", "distractor_free")])
        robot_joints = [self.model.joint(j) for j in range(self.model.njnt)]
        self._robot_joint_qpos = {
            joint.name.removeprefix(ROBOT_PREFIX): int(joint.qposadr[0])
            for joint in robot_joints
            if joint.name.startswith(ROBOT_PREFIX)
        }
        self._home = self.model.qpos0.copy()
        self._home[self._arm_qpos] = HOME_QPOS
        self._jac = np.zeros((3, self.model.nv)), np.zeros((3, self.model.nv))
        size = config.render_size
        self.K_render = intrinsics(config.fovy_deg, size, size)
        self.K = intrinsics(config.fovy_deg, config.image_size, config.image_size)
        self._renderer = mujoco.Renderer(self.model, size, size)
        flags = mujoco.mjtRndFlag
        for flag in (flags.mjRND_SHADOW, flags.mjRND_REFLECTION, flags.mjRND_SKYBOX):
            self._renderer.scene.flags[flag] = False
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._camera.fixedcamid = self.model.camera("view").id
        # orientation kept while reaching: the gripper pointing straight down, as at the home pose
        data = mujoco.MjData(self.model)
        data.qpos[:] = self._home
        mujoco.mj_kinematics(self.model, data)
        self._ee_rotation = data.xmat[self._ee].reshape(3, 3).copy()

    # ----------------------------------------------------------------------------------------------- episodes
    def new_data(self) -> mujoco.MjData:
        """A new MjData with the arm at its home pose."""
        data = mujoco.MjData(self.model)
        self.set_qpos(data, self._home)
        return data

    def set_qpos(self, data: mujoco.MjData, qpos: np.ndarray) -> None:
        """Set the full state (arm joints and cube poses) and update the body poses."""
        data.qpos[:] = qpos
        mujoco.mj_kinematics(self.model, data)
        mujoco.mj_camlight(self.model, data)  # the world-fixed lights' positions (mj_kinematics leaves them at 0)

    def reset(self, state: StartState) -> mujoco.MjData:
        """A new MjData with the cubes placed and the end effector moved to the start position."""
        qpos = self._home.copy()
        for adr, centre in zip(self._cube_qpos, state.cubes):
            qpos[adr : adr + 3] = centre
            qpos[adr + 3 : adr + 7] = [1.0, 0.0, 0.0, 0.0]
        data = mujoco.MjData(self.model)
        self.set_qpos(data, qpos)
        self.move_to(data, state.ee_start, iterations=60)
        return data

    def robot_joint_positions(self, qpos: np.ndarray) -> dict[str, float]:
        """The robot's joint values in a state (arm and fingers) by their URDF names: what /joint_states says."""
        return {name: float(qpos[adr]) for name, adr in self._robot_joint_qpos.items()}

    def ee_position(self, data: mujoco.MjData) -> np.ndarray:
        return data.xpos[self._ee].copy()

    def step(self, data: mujoco.MjData, action: np.ndarray) -> np.ndarray:
        """Apply a base-frame displacement (clipped to max_step_m); returns the new end-effector position."""
        action = clip_action(np.asarray(action, float), self.config.max_step_m)
        self.move_to(data, self.ee_position(data) + action)
        return self.ee_position(data)

    def move_to(self, data: mujoco.MjData, target: np.ndarray, iterations: int = 8) -> None:
        """Damped-least-squares IK on the 7 arm joints: end-effector position to `target`, gripper kept pointing
        down; joint limits respected by clipping."""
        model, jacp, jacr = self.model, *self._jac
        low, high = self._arm_range[:, 0], self._arm_range[:, 1]
        for _ in range(iterations):
            mujoco.mj_kinematics(model, data)
            mujoco.mj_comPos(model, data)
            position_error = target - data.xpos[self._ee]
            rotation = data.xmat[self._ee].reshape(3, 3)
            rotation_error = 0.5 * np.cross(rotation.T, self._ee_rotation.T).sum(axis=0)  # axis by axis
            error = np.concatenate([position_error, 0.5 * rotation_error])
            if np.linalg.norm(position_error) < 1e-4 and np.linalg.norm(rotation_error) < 1e-3:
                break
            mujoco.mj_jacBody(model, data, jacp, jacr, self._ee)
            J = np.concatenate([jacp[:, self._arm_dofs], 0.5 * jacr[:, self._arm_dofs]])
            dq = J.T @ np.linalg.solve(J @ J.T + 1e-4 * np.eye(6), error)
            data.qpos[self._arm_qpos] = np.clip(data.qpos[self._arm_qpos] + dq, low, high)
        mujoco.mj_kinematics(model, data)

    # --------------------------------------------------------------------------------------------- rendering
    def render(
        self, data: mujoco.MjData, T_world_cam: np.ndarray, depth: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Render at render_size from the optical pose T_world_cam: (rgb uint8 (S, S, 3), z-depth (S, S) metres or
        None)."""
        data.cam_xpos[0] = T_world_cam[:3, 3]
        data.cam_xmat[0] = (T_world_cam[:3, :3] @ _OPTICAL_TO_MUJOCO).ravel()
        self._renderer.update_scene(data, self._camera)
        rgb = self._renderer.render().copy()
        if not depth:
            return rgb, None
        self._renderer.enable_depth_rendering()
        try:
            z = self._renderer.render().copy()
        finally:
            self._renderer.disable_depth_rendering()
        return rgb, z

    def observe(self, data: mujoco.MjData, T_world_cam: np.ndarray) -> np.ndarray:
        """The policy's image: the render area-downsampled to image_size, (s, s, 3) uint8."""
        return downsample(self.render(data, T_world_cam)[0], self.config.render_scale)

    def close(self) -> None:
        self._renderer.close()


def clip_action(action: np.ndarray, max_norm: float) -> np.ndarray:
    """Scale displacement(s) (..., 3) down to at most max_norm metres."""
    norm = np.linalg.norm(action, axis=-1, keepdims=True)
    return action * np.minimum(1.0, max_norm / np.maximum(norm, 1e-12))


def expert_action(ee: np.ndarray, goal: np.ndarray, max_step_m: float) -> np.ndarray:
    """The scripted expert: straight to the hover point above the target cube, at most max_step_m per step."""
    return clip_action(goal - ee, max_step_m)


def downsample(image: np.ndarray, factor: int) -> np.ndarray:
    """Area-average (..., H, W, 3) uint8 images by an integer factor, rounding half up (integer sums of strided
    views: ~9x cheaper than a float mean over reshaped blocks, which cost 9 % of the closed-loop evaluation)."""
    if factor == 1:
        return image
    *lead, h, w, c = image.shape
    total = np.zeros((*lead, h // factor, w // factor, c), np.uint32)
    for dy in range(factor):
        for dx in range(factor):
            total += image[..., dy::factor, dx::factor, :]
    total += factor * factor // 2
    total //= factor * factor
    return total.astype(np.uint8)


def _decimate_meshes(spec: mujoco.MjSpec, max_faces: int) -> None:
    """Replace each mesh of `spec` (from a file, or user vertices and faces as the robot library gives multi-object
    OBJ files) by a quadric-decimated copy of at most ~max_faces triangles (in the mesh's own frame, so the compiler
    places it exactly as the original). llvmpipe's render cost here grows with the robot's triangle count: ~9.6 ms
    CPU per 128x128 frame for the Panda's 65 k faces with 4x multisampling, ~5 ms decimated to 13 k, ~2-3 ms
    without multisampling at 13-32 k."""
    for mesh in spec.meshes:
        # the hand's mesh loses faces visibly under decimation (thin open shells); it is kept as it is
        faces_wanted = 0 if mesh.name == "hand" else max_faces
        if mesh.file:
            vertices, faces = _mesh_arrays(os.path.join(spec.meshdir, mesh.file), faces_wanted)
        else:
            vertices, faces = _decimated(np.asarray(mesh.uservert, np.float32), np.asarray(mesh.userface), faces_wanted)
        mesh.file = ""
        mesh.uservert = vertices.ravel()
        mesh.userface = faces.ravel()


def _decimated(vertices: np.ndarray, faces: np.ndarray, max_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (N, 3) float32, faces (F, 3) int32) decimated to ~max_faces (0: as they are)."""
    vertices, faces = vertices.reshape(-1, 3).astype(np.float32), faces.reshape(-1, 3).astype(np.int32)
    if 0 < max_faces < len(faces):
        import fast_simplification

        vertices, faces = fast_simplification.simplify(vertices, faces, target_reduction=1 - max_faces / len(faces))
    return vertices, faces


@functools.cache
def _mesh_arrays(path: str, max_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """A mesh file's vertices and faces, decimated to ~max_faces (0: as it is); cached because decimation takes
    seconds and every ReachTask in a process needs the same meshes."""
    import trimesh

    loaded: Any = trimesh.load(path, force="mesh")  # a Trimesh (force="mesh"); merges duplicate vertices
    return _decimated(np.asarray(loaded.vertices), np.asarray(loaded.faces), max_faces)


def _build_model(config: TaskConfig) -> mujoco.MjModel:
    """Table, room, lights, the library Panda at the origin, the two cubes (free joints, placed not simulated) and a
    camera whose pose `ReachTask.render` sets per frame."""
    spec = mujoco.MjSpec()
    # no headlight: lights fixed in the world keep a surface's colour the same from every viewpoint, as for a real
    # camera moved around a lit scene (a headlight would make the oracle's renders differ in shading, not geometry)
    spec.visual.headlight.active = 0
    spec.visual.map.znear = 0.01
    # no multisampling: the policy's image is area-downsampled from a render at twice its size, which anti-aliases
    # it already, and 4x MSAA made each llvmpipe render ~2.5x dearer; an offscreen buffer of the render's size
    spec.visual.quality.offsamples = 0
    spec.visual.global_.offwidth = spec.visual.global_.offheight = config.render_size
    world = spec.worldbody
    directional = mujoco.mjtLightType.mjLIGHT_DIRECTIONAL
    world.add_light(
        type=directional, dir=[-0.3, 0.4, -1.0], diffuse=[0.5, 0.5, 0.5], ambient=[0.35, 0.35, 0.35], castshadow=False
    )
    world.add_light(type=directional, dir=[0.5, -0.3, -0.6], diffuse=[0.25, 0.25, 0.25], castshadow=False)
    box = mujoco.mjtGeom.mjGEOM_BOX
    # table top at z = 0 (the base frame's origin), then floor and walls so every pixel has depth
    world.add_geom(type=box, size=[0.75, 0.6, 0.02], pos=[0.45, 0.0, -0.02], rgba=[0.6, 0.55, 0.45, 1])
    world.add_geom(type=box, size=[3.0, 3.0, 0.01], pos=[0.0, 0.0, -0.76], rgba=[0.45, 0.45, 0.48, 1])
    for pos, size in [
        ([-1.2, 0, 0.5], [0.01, 3, 1.3]),
        ([3.0, 0, 0.5], [0.01, 3, 1.3]),
        ([0.9, -2.0, 0.5], [3, 0.01, 1.3]),
        ([0.9, 2.0, 0.5], [3, 0.01, 1.3]),
    ]:
        world.add_geom(type=box, size=size, pos=pos, rgba=[0.78, 0.78, 0.74, 1])
    half = config.cube_half_m
    for name, rgba in (("target", [0.85, 0.1, 0.1, 1]), ("distractor", [0.1, 0.25, 0.85, 1])):
        body = world.add_body(name=name, pos=[0.5, 0.0, half])
        body.add_freejoint(name=f"{name}_free")
        body.add_geom(type=box, size=[half] * 3, rgba=rgba)
    world.add_camera(name="view", fovy=config.fovy_deg)
    _, robot = load_robot(ROBOT)
    _decimate_meshes(robot, config.robot_mesh_faces)
    world.add_frame().attach_body(robot.worldbody.first_body(), ROBOT_PREFIX, "")
    with mujoco_warnings_to_log():
        return spec.compile()
