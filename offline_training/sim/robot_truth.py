"""Simulator truth for the robot layer: a data-engine scene with a URDF robot at its true size, its joint state by
URDF joint name, the camera-from-root transform, and MuJoCo's rendering (colour, depth, robot mask) from any camera.

The robot is not scaled (`SceneConfig.robot_scale` = 1), so the URDF drawn by `model.robot` must coincide with it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .camera import intrinsics, look_at
from .render import SceneRenderer, set_state
from .scene import SceneConfig, build_scene

_PREFIX = "robot/"


class RobotTruthScene:
    """A scene around library robot ``robot`` (a URDF entry such as "panda_bullet") rendered at ``height`` x ``width``.

    Use as a context manager (it holds a MuJoCo render context).
    """

    def __init__(
        self,
        robot: str,
        height: int,
        width: int,
        seed: int = 0,
        num_objects: tuple[int, int] = (0, 0),
        root_link: str | None = None,
    ) -> None:
        self.rng = np.random.default_rng(seed)
        self.scene = build_scene(robot, self.rng, SceneConfig(robot_scale=(1.0, 1.0), num_objects=num_objects))
        model = self.scene.model
        robot_bodies = [b for b in range(model.nbody) if model.body(b).name.startswith(_PREFIX)]
        self.root_body = model.body(f"{_PREFIX}{root_link}").id if root_link else robot_bodies[0]
        self.height, self.width = height, width
        self.renderer = SceneRenderer(self.scene, height, width)

    def set_joints(self, offsets: np.ndarray | None = None) -> None:
        """Robot at its default pose plus ``offsets`` (J,) (radians/metres, clipped into the joint ranges)."""
        scene = self.scene
        qpos = scene.data.qpos.copy()
        target = scene.default_qpos + (0.0 if offsets is None else offsets)
        qpos[scene.robot_qpos_adr] = np.clip(target, scene.joint_range[:, 0], scene.joint_range[:, 1])
        set_state(scene, qpos)

    def random_offsets(self, fraction: float = 0.15) -> np.ndarray:
        ranges = self.scene.joint_range
        return self.rng.uniform(-1, 1, len(ranges)) * fraction * (ranges[:, 1] - ranges[:, 0])

    def joint_positions(self) -> dict[str, float]:
        """Current joint values by the robot file's joint names."""
        model, data = self.scene.model, self.scene.data
        return {
            model.joint(j).name[len(_PREFIX) :]: float(data.qpos[model.jnt_qposadr[j]])
            for j in range(model.njnt)
            if model.joint(j).name.startswith(_PREFIX)
        }

    def T_world_root(self) -> np.ndarray:
        T = np.eye(4)
        T[:3, :3] = self.scene.data.xmat[self.root_body].reshape(3, 3)
        T[:3, 3] = self.scene.data.xpos[self.root_body]
        return T

    def root_position(self) -> np.ndarray:
        return self.T_world_root()[:3, 3]

    def render(self, T_world_cam: np.ndarray, fovy_deg: float) -> dict:
        """rgb (H, W, 3) uint8, depth (H, W) float32 m, robot (H, W) bool, K (3, 3), T_cam_root (4, 4)."""
        self.renderer.set_camera("view", T_world_cam, fovy_deg)
        rgb, depth, _, robot = self.renderer.render("view")
        return dict(
            rgb=rgb,
            depth=depth,
            robot=robot > 0,
            K=intrinsics(fovy_deg, self.height, self.width),
            T_cam_root=np.linalg.inv(T_world_cam) @ self.T_world_root(),
        )

    def robot_layer_cameras(self, target_side_m: float = -0.1) -> tuple[np.ndarray, np.ndarray]:
        """(T_world_src, T_world_tgt) of the robot-layer cases: a source camera 1.3 m in front of the robot's base,
        0.5 m to its right and 0.7 m up, and a virtual camera target_side_m to the side and 0.8 m up (about 20 degrees
        around the robot at the default), both looking at a point 0.4 m above the base."""
        root = self.root_position()
        centre = root + [0, 0, 0.4]
        return look_at(root + [1.3, -0.5, 0.7], centre), look_at(root + [1.3, target_side_m, 0.8], centre)

    def random_pose_views(
        self, poses: int, fraction: float, target_side_m: float = -0.1, fovy_deg: float = 55.0
    ) -> Iterator[tuple[dict, dict, dict[str, float]]]:
        """(source render, target render, joint positions) at `poses` random arm poses (`random_offsets(fraction)`),
        seen by `robot_layer_cameras(target_side_m)`."""
        T_world_src, T_world_tgt = self.robot_layer_cameras(target_side_m)
        for _ in range(poses):
            self.set_joints(self.random_offsets(fraction))
            yield self.render(T_world_src, fovy_deg), self.render(T_world_tgt, fovy_deg), self.joint_positions()

    def close(self) -> None:
        self.renderer.close()

    def __enter__(self) -> "RobotTruthScene":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
