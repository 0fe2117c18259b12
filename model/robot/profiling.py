"""The robot layer's cost per frame, stage by stage: the harness behind `bench/bench_robot.py` and the robot row of
`bench/gpu_check.py` (`gpu_check_case`). Stages are timed by `model.robot.stages`."""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from .stages import StageTimes, stage

if TYPE_CHECKING:
    from .model import RobotModel


@dataclasses.dataclass(frozen=True)
class ProfileFrame:
    """One source frame of a profiling run: rgb (H, W, 3) uint8, depth (H, W) float32 metres, joint positions."""

    rgb: np.ndarray
    depth: np.ndarray
    positions: Mapping[str, float]


@dataclasses.dataclass(frozen=True)
class LayerProfile:
    """What `profile_robot_layer` measured: ``stages`` the frame thread's CPU ms per frame by stage path,
    ``wall_ms`` the median wall ms per frame, ``hand_eye_ms`` the hand-eye worker thread's CPU ms per frame (its
    checks' cost spread over the frames; not on the frame thread) and ``hand_eye_checks`` how many it ran;
    ``frames`` the frames timed and ``appearance_fits`` on how many of them the appearance was fitted."""

    stages: dict[str, float]
    wall_ms: float
    hand_eye_ms: float
    hand_eye_checks: int
    frames: int
    appearance_fits: int


def profile_robot_layer(
    robot: "RobotModel",
    frames: Sequence[ProfileFrame],
    K_src: np.ndarray,
    T_cam_root: np.ndarray,
    K_dst: np.ndarray,
    T_dst_src: np.ndarray,
    repeats: int,
    hand_eye_every: int = 30,
) -> LayerProfile:
    """The robot layer's cost per frame, stage by stage (see `LayerProfile`).

    Runs what `embody4d_ros.robot_layer.RobotLayer` does per frame (the depth repair, source render, virtual render,
    the memory's background, the composition with the appearance refitted as its `AppearanceCache` says, the memory
    update, the hand-eye check handed to its worker thread every ``hand_eye_every`` frames) over ``frames`` in turn,
    ``repeats`` times after one warm-up pass (the joints change every frame, as when the arm moves, so nothing is
    reused from the frame before unless the model caches it).
    """
    from model.geometry import fill_depth_holes, repair_depth

    from .appearance import AppearanceCache
    from .calibration import BackgroundHandEyeCheck, HandEyeMonitor
    from .compose import compose_robot_view
    from .scene_memory import StaticSceneMemory

    height, width = frames[0].depth.shape
    memory, appearance = StaticSceneMemory(), AppearanceCache()
    T_dst_root = T_dst_src @ T_cam_root
    times, walls, count = StageTimes(), [], 0

    def one(frame: ProfileFrame, index: int, hand_eye: BackgroundHandEyeCheck) -> None:
        with stage("depth repair"):
            depth, reliability = repair_depth(frame.depth, frame.rgb)
        with stage("source render"):
            robot_src = robot.render(frame.positions, K_src, T_cam_root, height, width, with_colour=False, coarse=True)
        with stage("virtual render"):
            model_colours = appearance.latest(len(robot.part_link)) is None  # as the robot layer renders it
            robot_dst = robot.render(frame.positions, K_dst, T_dst_root, height, width, model_colours=model_colours)
        with stage("scene memory fill"):
            memory_rgb, memory_depth = memory.background()
        with stage("composition"):
            compose_robot_view(
                frame.rgb,
                depth,
                K_src,
                K_dst,
                T_dst_src,
                (height, width),
                robot_src,
                robot_dst,
                robot.part_link,
                memory_rgb=memory_rgb,
                memory_depth=memory_depth,
                reliability=reliability,
                appearance_cache=appearance,
            )
        with stage("scene memory update"):
            memory.update(frame.rgb, depth, robot_src.mask, T_cam_root, robot_src.box)
        if hand_eye_every > 0 and index % hand_eye_every == 0:
            with stage("hand-eye check hand-off"):
                hand_eye.submit(robot_src.depth, robot_src.mask, fill_depth_holes(frame.depth).copy(), K_src)

    warm_up = BackgroundHandEyeCheck(HandEyeMonitor())
    for index, frame in enumerate(frames):  # warm-up: compiled kernels and the check's modules load, the memory fills
        one(frame, index, warm_up)
    warm_up.wait()
    hand_eye = BackgroundHandEyeCheck(HandEyeMonitor())
    warm_up_fits = appearance.fits
    with times.collect():
        for _ in range(repeats):
            for frame in frames:
                start = time.perf_counter()
                one(frame, count, hand_eye)
                walls.append(time.perf_counter() - start)
                count += 1
    hand_eye.wait()
    return LayerProfile(
        times.ms(per=count),
        statistics.median(walls) * 1e3,
        hand_eye.cpu_ns / 1e6 / count,
        hand_eye.checks,
        count,
        appearance.fits - warm_up_fits,
    )


# a small arm of primitives: the case's robot where no detailed robot model is installed, and in smoke runs
_PRIMITIVE_ARM = """<robot name="primitive_arm">
  <link name="base"><visual><geometry><box size="0.3 0.3 0.1"/></geometry></visual></link>
  <link name="upper"><visual><origin xyz="0 0 0.25"/><geometry><cylinder radius="0.05" length="0.5"/></geometry>
    </visual></link>
  <link name="fore"><visual><origin xyz="0 0 0.2"/><geometry><cylinder radius="0.04" length="0.4"/></geometry>
    </visual><visual><origin xyz="0 0 0.42"/><geometry><sphere radius="0.06"/></geometry></visual></link>
  <joint name="shoulder" type="revolute"><parent link="base"/><child link="upper"/><origin xyz="0 0 0.05"/>
    <axis xyz="0 1 0"/></joint>
  <joint name="elbow" type="revolute"><parent link="upper"/><child link="fore"/><origin xyz="0 0 0.5"/>
    <axis xyz="0 1 0"/></joint>
</robot>"""


def _look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """T_cam_root of an optical frame (z forward, y down) at ``eye`` looking at ``target``, z up in the root."""
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    T_root_cam = np.eye(4)
    T_root_cam[:3, :3] = np.stack([right, np.cross(forward, right), forward], axis=1)
    T_root_cam[:3, 3] = eye
    return np.linalg.inv(T_root_cam)


def synthetic_case(
    robot: "RobotModel", height: int, width: int, num_frames: int, seed: int = 0
) -> tuple[list[ProfileFrame], dict[str, Any]]:
    """Source frames of ``robot`` before a textured wall, as an RGB-D camera 1.6 m away would see them (the robot's
    own render pasted onto the wall), its joints sweeping ±0.3 rad; and the cameras (`profile_robot_layer`'s
    keyword arguments), the virtual one 20 degrees around the robot. No simulator needed."""
    rng = np.random.default_rng(seed)
    focal = 0.9 * width
    K = np.array([[focal, 0, (width - 1) / 2], [0, focal, (height - 1) / 2], [0, 0, 1]])
    target = np.array([0.0, 0.0, 0.45])
    azimuth = 0.3
    T_cam_root = _look_at(np.array([1.6 * np.cos(azimuth), 1.6 * np.sin(azimuth), 0.9]), target)
    azimuth += np.deg2rad(20)
    T_dst_root = _look_at(np.array([1.6 * np.cos(azimuth), 1.6 * np.sin(azimuth), 1.0]), target)
    wall = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    start, end = rng.uniform(-0.3, 0.3, (2, len(robot.joint_names)))
    frames = []
    for step in np.linspace(0.0, 1.0, num_frames):
        positions = dict(zip(robot.joint_names, (1 - step) * start + step * end))
        seen = robot.render(positions, K, T_cam_root, height, width)
        assert seen.rgb is not None  # rendered with colour
        rgb = np.where(seen.mask[..., None], seen.rgb, wall)
        depth = np.where(seen.mask, seen.depth, np.float32(3.0)).astype(np.float32)
        frames.append(ProfileFrame(rgb, depth, positions))
    return frames, dict(K_src=K, T_cam_root=T_cam_root, K_dst=K, T_dst_src=T_dst_root @ np.linalg.inv(T_cam_root))


def gpu_check_case(device: str, smoke: bool) -> dict[str, object]:
    """The robot layer's row for `bench/gpu_check.py`: thread-CPU ms per 480x640 frame of each stage (smoke: 48x64,
    one pass). The layer runs on the CPU (numba kernels) beside the GPU engine, so this times the device machine's
    CPU; ``device`` is recorded. The robot is pybullet_data's franka_panda where it is installed (the benchmark's
    robot), else a primitive arm; the frames are synthetic (`synthetic_case`)."""
    from .model import RobotModel

    robot, name = RobotModel.from_urdf_string(_PRIMITIVE_ARM), "primitive arm"
    if not smoke:
        try:
            import pybullet_data

            path = os.path.join(pybullet_data.getDataPath(), "franka_panda", "panda.urdf")
            robot, name = RobotModel.from_file(path), "franka_panda"
        except (ImportError, OSError, ValueError):  # RobotModelError is a ValueError: keep the primitive arm
            pass
    height, width, num_frames, repeats = (48, 64, 3, 1) if smoke else (480, 640, 6, 5)
    frames, cameras = synthetic_case(robot, height, width, num_frames)
    profile = profile_robot_layer(robot, frames, repeats=repeats, **cameras)
    top: dict[str, float] = defaultdict(float)
    for path, ms in profile.stages.items():
        top[path.split("/")[0]] += ms
    warp = sum(ms for path, ms in profile.stages.items() if path.endswith("/scene warp"))
    return {
        "robot": name,
        "triangles": robot.num_faces,
        "size": f"{height}x{width}",
        "device": device,
        "runs_on": "CPU (numba)",
        **{f"{stage_name.replace(' ', '_')}_ms": round(ms, 2) for stage_name, ms in sorted(top.items())},
        "scene_warp_ms": round(warp, 2),
        "layer_without_warp_ms": round(sum(top.values()) - warp, 2),
        "hand_eye_worker_ms": round(profile.hand_eye_ms, 2),
        "wall_ms": round(profile.wall_ms, 1),
    }
