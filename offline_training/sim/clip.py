"""Two-view robot clips: one random scene and motion seen by two fixed cameras, in the docs/DESIGN.md sample schema."""

from __future__ import annotations

import dataclasses

import numpy as np

from .camera import anchor_track, intrinsics, look_at, transform
from .motion import couple_joints, play_motion, random_joint_motion
from .render import SceneRenderer, set_state
from .robot_reference import robot_reference
from .scene import ROOM_HALF, ROOM_HEIGHT, Scene, SceneConfig, build_scene, robot_geom_ids


@dataclasses.dataclass
class CameraConfig:
    """Source/target camera ranges. Angles in degrees; the source orbits the robot's front, the target the source."""

    fovy_deg: tuple[float, float] = (45.0, 60.0)
    azimuth_deg: tuple[float, float] = (-70.0, 70.0)  # source camera around the robot, 0 = in front of it
    elevation_deg: tuple[float, float] = (12.0, 40.0)
    fill: tuple[float, float] = (0.55, 0.8)  # robot's bounding-sphere diameter as a fraction of the image height
    yaw_deg: tuple[float, float] = (8.0, 30.0)  # target yaw relative to the source, either sign
    pitch_deg: tuple[float, float] = (-8.0, 12.0)  # target pitch relative to the source
    distance_ratio: tuple[float, float] = (0.9, 1.15)  # target / source distance to the robot
    anchor_frames: int = 8  # source frames sampled for the 3D anchor


@dataclasses.dataclass
class MotionConfig:
    """Robot motion: the paper's random motion around the default pose."""

    step_fraction: float = 0.01  # of each joint's range per frame
    fps: float = 10.0  # frame rate of the clip: the physics of the loose objects runs at this pace
    max_offset_fraction: float = 0.2
    smoothness: float = 0.9


_CORNERS = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)  # (8, 3)


def _robot_extent(scene: Scene, states: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre (3,) and radius of a sphere around the robot's visible geoms' boxes over the states (T, nq)."""
    model, data = scene.model, scene.data
    geoms = robot_geom_ids(scene)
    aabb = model.geom_aabb[geoms]  # (G, 6): centre and half size in the geom frame
    local = aabb[:, None, :3] + _CORNERS[None] * aabb[:, None, 3:]  # (G, 8, 3)
    points = []
    for state in states[:: max(1, len(states) // 6)]:
        set_state(scene, state)
        xmat = data.geom_xmat[geoms].reshape(-1, 3, 3)
        points.append(np.einsum("gij,gkj->gki", xmat, local).reshape(-1, 3) + np.repeat(data.geom_xpos[geoms], 8, 0))
    cloud = np.concatenate(points)
    lo, hi = cloud.min(0), cloud.max(0)
    return (lo + hi) / 2, float(np.linalg.norm(hi - lo) / 2)


def _orbit(centre: np.ndarray, distance: float, azimuth: float, elevation: float) -> np.ndarray:
    """Camera position at ``distance`` from ``centre`` in direction (azimuth, elevation) in degrees, pulled in so it
    stays inside the room (a camera outside would see the walls' backs)."""
    az, el = np.deg2rad(azimuth), np.deg2rad(elevation)
    direction = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    lo = np.array([-ROOM_HALF + _WALL_MARGIN, -ROOM_HALF + _WALL_MARGIN, _WALL_MARGIN])
    hi = np.array([ROOM_HALF - _WALL_MARGIN, ROOM_HALF - _WALL_MARGIN, ROOM_HEIGHT - _WALL_MARGIN])
    with np.errstate(divide="ignore"):
        limits = np.where(direction > 0, (hi - centre) / direction, (lo - centre) / direction)
    return centre + min(distance, float(np.min(limits[direction != 0]))) * direction


_WALL_MARGIN = 0.15
_MAX_FOVY_DEG = 90.0


def render_two_view_clip(
    robot: str = "panda",
    num_frames: int = 13,
    height: int = 240,
    width: int = 320,
    seed: int = 0,
    scene_config: SceneConfig | None = None,
    camera_config: CameraConfig | None = None,
    motion_config: MotionConfig | None = None,
) -> dict:
    """Render one two-view clip of ``robot`` moving in a random scene (docs/DESIGN.md contract 6).

    Returns:
        dict with src_rgb/tgt_rgb (T, H, W, 3) uint8; src_depth/tgt_depth (T, H, W) float32 metres (0 = invalid);
        src_mask/tgt_mask (T, H, W) uint8 (1 = robot or object); src_robot_mask/tgt_robot_mask (T, H, W) uint8 (1 =
        robot); K_src/K_tgt (3, 3) float64; T_tgt_src (T, 4, 4) float64 in ROS optical frames; the robot's state:
        joint_names (J,) str, joint_positions (T, J) float64, robot_model (a reference, `robot_reference`),
        T_src_base (4, 4) float64 (the robot's base frame in the source optical frame); caption str; meta dict
        (robot, scene, seed, cameras, ...). The cameras are fixed, so T_tgt_src is the same for every frame.
    """
    rng = np.random.default_rng(seed)
    scene_config, camera_config = scene_config or SceneConfig(), camera_config or CameraConfig()
    motion_config = motion_config or MotionConfig()
    scene = build_scene(robot, rng, scene_config)
    trajectory = random_joint_motion(
        scene.default_qpos,
        scene.joint_range,
        num_frames,
        rng,
        motion_config.step_fraction,
        motion_config.max_offset_fraction,
        motion_config.smoothness,
    )
    trajectory = couple_joints(scene.model, scene.robot_qpos_adr, trajectory)
    states = play_motion(scene.model, scene.data, scene.robot_qpos_adr, trajectory, motion_config.fps)
    cc = camera_config
    centre, radius = _robot_extent(scene, states)

    # source camera: in front of the robot (robot faces +x turned by its yaw), far enough to fit it
    fovy, fill = rng.uniform(*cc.fovy_deg), rng.uniform(*cc.fill)
    robot_yaw = scene.info["robot_yaw_deg"]
    distance = radius / np.tan(np.deg2rad(fovy) / 2) / fill
    azimuth, elevation = robot_yaw + rng.uniform(*cc.azimuth_deg), rng.uniform(*cc.elevation_deg)
    eye_src = _orbit(centre, distance, azimuth, elevation)

    # target camera: orbit the source around the robot centre by a yaw/pitch offset and a distance change
    d_yaw = rng.uniform(*cc.yaw_deg) * rng.choice([-1, 1])
    d_pitch = rng.uniform(*cc.pitch_deg)
    eye_tgt = _orbit(
        centre, distance * rng.uniform(*cc.distance_ratio), azimuth + d_yaw, np.clip(elevation + d_pitch, 5.0, 75.0)
    )
    # a camera pulled in by the room's walls (large robots) widens both views' field of view to keep the fill
    nearest = min(np.linalg.norm(eye_src - centre), np.linalg.norm(eye_tgt - centre))
    fovy = float(np.clip(2 * np.rad2deg(np.arctan(radius / (fill * nearest))), fovy, _MAX_FOVY_DEG))
    T_world_src, T_world_tgt = look_at(eye_src, centre), look_at(eye_tgt, centre)
    K = intrinsics(fovy, height, width)

    src = {
        k: np.empty((num_frames, height, width) + s, dt)
        for k, s, dt in [
            ("rgb", (3,), np.uint8),
            ("depth", (), np.float32),
            ("mask", (), np.uint8),
            ("robot", (), np.uint8),
        ]
    }
    tgt = {k: np.empty_like(v) for k, v in src.items()}
    with SceneRenderer(scene, height, width) as renderer:
        renderer.set_camera("src", T_world_src, fovy)
        for t, state in enumerate(states):
            set_state(scene, state)
            src["rgb"][t], src["depth"][t], src["mask"][t], src["robot"][t] = renderer.render("src")

        # 3D anchor tracking (paper sec. 3): robot centre lifted from sampled source frames, moved into the target
        # camera, averaged and projected; the target camera turns so the anchor lands on its image centre
        sampled = np.sort(rng.choice(num_frames, min(cc.anchor_frames, num_frames), replace=False))
        T_tgt_src = np.linalg.inv(T_world_tgt) @ T_world_src
        try:
            anchor_tgt, _ = anchor_track(src["robot"][sampled], src["depth"][sampled], K, T_tgt_src, K)
            T_world_tgt = look_at(eye_tgt, transform(T_world_tgt, anchor_tgt[None])[0])
        except ValueError:
            pass  # robot invisible in the source: keep aiming at the robot centre; the plausibility check rejects it
        T_tgt_src = np.linalg.inv(T_world_tgt) @ T_world_src

        renderer.set_camera("tgt", T_world_tgt, fovy)
        for t, state in enumerate(states):
            set_state(scene, state)
            tgt["rgb"][t], tgt["depth"][t], tgt["mask"][t], tgt["robot"][t] = renderer.render("tgt")

    name = scene.entry.display_name or scene.entry.name
    caption = f"A {name} ({scene.entry.kind}) moving {scene.description}."
    baseline = float(np.linalg.norm(eye_tgt - eye_src))
    axis_angle = float(np.rad2deg(np.arccos(np.clip(T_world_src[:3, 2] @ T_world_tgt[:3, 2], -1, 1))))
    meta = dict(
        robot=robot,
        seed=int(seed),
        scene=scene.info,
        source=scene.entry.source,
        num_frames=num_frames,
        fovy_deg=float(fovy),
        baseline_m=baseline,
        view_angle_deg=axis_angle,
        yaw_offset_deg=float(d_yaw),
        pitch_offset_deg=float(d_pitch),
        T_world_src=T_world_src.tolist(),
        T_world_tgt=T_world_tgt.tolist(),
    )
    return dict(
        src_rgb=src["rgb"],
        tgt_rgb=tgt["rgb"],
        src_depth=src["depth"],
        tgt_depth=tgt["depth"],
        src_mask=src["mask"],
        tgt_mask=tgt["mask"],
        src_robot_mask=src["robot"],
        tgt_robot_mask=tgt["robot"],
        K_src=K.copy(),
        K_tgt=K.copy(),
        T_tgt_src=np.repeat(T_tgt_src[None], num_frames, axis=0),
        joint_names=list(scene.joint_names),
        joint_positions=states[:, scene.robot_qpos_adr].copy(),
        robot_model=robot_reference(robot, scene.info["robot_scale"]),
        T_src_base=np.linalg.inv(T_world_src) @ scene.T_world_base,
        caption=caption,
        meta=meta,
    )
