"""Scripted demonstrations and the extra training views of each variant.

A variant adds, for every demonstration and every viewpoint drawn for it by the project's LIBERO-style
`ViewpointSampler`, the demonstration as seen from that viewpoint. Virtual views go through the public path that
`augment-bag` uses (`model.virtual_view.render_virtual_view` with an engine from `model.engines.create_engine`); the
oracle renders the same viewpoints in the simulator. The robot-aware variant adds augment-bag's robot layer
(`embody4d_ros.robot_layer.RobotLayer`) in front of the engine. To benchmark a new engine (a network engine with
other weights), add one line to `VIEW_SOURCES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from tqdm import tqdm

from embody4d_ros.params import defaults as node_defaults
from embody4d_ros.robot_layer import RobotLayer
from embody4d_ros.robot_layer import config_from_params as robot_config_from_params
from model.engines import Engine, create_engine
from model.geometry import OrbitTarget, ViewpointSampler
from model.virtual_view import VirtualView, prepare_virtual_view, render_virtual_view, resolve_target
from offline_training.policy_bench.task import (
    ROBOT_URDF,
    ReachTask,
    camera_pose,
    downsample,
    expert_action,
    orbit_pose,
    sample_start_states,
)


@dataclass
class Demonstrations:
    """Expert episodes from the training camera, each `max_steps` frames long.

    images: (E, T, s, s, 3) uint8 policy images; ee: (E, T, 3) end-effector positions and actions: (E, T, 3) expert
    displacements (m, base frame);
    rgb, depth: (E, T, S, S, 3) uint8 / (E, T, S, S) float32 renders at render_size (the warp's source);
    qpos: (E, T, nq) simulator states (the oracle re-renders them); success: (E,) bool, the (noisy) expert came within
    success_radius_m of the goal.
    """

    images: np.ndarray
    ee: np.ndarray
    actions: np.ndarray
    rgb: np.ndarray
    depth: np.ndarray
    qpos: np.ndarray
    success: np.ndarray

    def __getitem__(self, episodes: slice) -> Demonstrations:
        """The demonstrations of a slice of episodes (the benchmark makes views chunk by chunk)."""
        return Demonstrations(*(getattr(self, f.name)[episodes] for f in fields(self)))


def collect_demonstrations(task: ReachTask, count: int, seed: int, action_noise_m: float = 0.01) -> Demonstrations:
    """Run the scripted expert from `count` random start states.

    The executed action gets Gaussian noise (std action_noise_m) while the label stays the expert's action at the
    visited state (DART, Laskey et al. 2017), so the demonstrations cover the small mistakes a cloned policy makes.
    """
    config = task.config
    rng = np.random.default_rng(seed)
    states = sample_start_states(config, count, rng)
    T_world_cam = camera_pose(config)
    ees, actions, rgbs, depths, qposes, success = [], [], [], [], [], []
    for state in tqdm(states, desc="demonstrations", unit="demo"):
        data = task.reset(state)
        episode: dict[str, list[np.ndarray]] = {"rgb": [], "depth": [], "ee": [], "action": [], "qpos": []}
        reached = False  # the evaluation's success criterion: within the radius after some step
        for _ in range(config.max_steps):
            rgb, depth = task.render(data, T_world_cam, depth=True)
            assert depth is not None  # asked for
            action = expert_action(task.ee_position(data), state.goal, config.max_step_m)
            episode["rgb"].append(rgb)
            episode["depth"].append(depth)
            episode["ee"].append(task.ee_position(data))
            episode["action"].append(action)
            episode["qpos"].append(data.qpos.copy())
            ee = task.step(data, action + rng.normal(0.0, action_noise_m, 3))
            reached = reached or bool(np.linalg.norm(ee - state.goal) < config.success_radius_m)
        rgbs.append(np.stack(episode["rgb"]))
        depths.append(np.stack(episode["depth"]))
        ees.append(np.stack(episode["ee"]))
        actions.append(np.stack(episode["action"]))
        qposes.append(np.stack(episode["qpos"]))
        success.append(reached)
    rgb = np.stack(rgbs)
    return Demonstrations(
        images=downsample(rgb, config.render_scale),
        ee=np.stack(ees),
        actions=np.stack(actions),
        rgb=rgb,
        depth=np.stack(depths),
        qpos=np.stack(qposes),
        success=np.array(success),
    )


def sample_viewpoints(count: int, per_demo: int, pivot_m: float, seed: int) -> list[list[OrbitTarget]]:
    """`per_demo` viewpoints for each of `count` demonstrations from the LIBERO-style sampler (its default ranges:
    yaw 5-30 deg, pitch 5-20 deg, forward/backward 5-20 cm) orbiting the table point the camera looks at."""
    sampler = ViewpointSampler(pivot_m=pivot_m)
    rng = np.random.default_rng(seed)
    return [[sampler.sample(rng) for _ in range(per_demo)] for _ in range(count)]


# A view source turns one demonstration (its index) and one viewpoint into (T, s, s, 3) uint8 policy images.
ViewSource = Callable[[ReachTask, Demonstrations, int, OrbitTarget], np.ndarray]


@dataclass
class EngineViews:
    """Virtual views from an engine of `model.engines` (options go to `create_engine`), rendered at the camera's
    render size and area-downsampled like the camera's own images."""

    engine: str
    options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._engine: Engine | None = None

    def __call__(self, task: ReachTask, demos: Demonstrations, index: int, target: OrbitTarget) -> np.ndarray:
        if self._engine is None:  # created on first use: a network engine loads its weights once
            self._engine = create_engine(self.engine, **self.options)
        engine = self._engine
        frames, _ = render_virtual_view(engine, demos.rgb[index], demos.depth[index], task.K_render, target)
        return downsample(frames, task.config.render_scale)


# what the robot-aware view's recording calls the camera's optical frame (its images' frame_id)
CAMERA_FRAME = "camera_color_optical_frame"
# the control period: frames and joint states are stamped alike, one per control step
STEP_NS = 100_000_000


@dataclass
class RobotAwareViews:
    """Robot-aware virtual views made as augment-bag makes them from a recording with the robot topics: a
    `RobotLayer` with the node's default `robot.*` parameters is fed the task robot's URDF (the library Panda's,
    as /robot_description), the camera's pose in the robot base (/tf_static) and each frame's joint states
    (/joint_states, stamped like the frame); it draws the arm into the virtual camera from the model and fills what
    the arm hid in the source from its static-scene memory; the engine (options to `create_engine`) fills the rest.

    Each demonstration and viewpoint gets a fresh layer, as augment-bag run on a recording of that one
    demonstration: the memory starts empty and learns the table behind the arm as the arm moves away. A frame the
    layer refuses is an error, not a plain view: the variant must not silently become the plain warp.
    """

    engine: str = "warp"
    options: dict = field(default_factory=lambda: {"inpaint": "pushpull"})

    def __post_init__(self) -> None:
        self._engine: Engine | None = None
        self._robot: Any = None  # model.robot.RobotModel, loaded on first use (~100 k triangles, seconds)

    def render(
        self, task: ReachTask, demos: Demonstrations, index: int, target: OrbitTarget
    ) -> tuple[np.ndarray, list[VirtualView]]:
        """((T, S, S, 3) uint8 frames at render size, the layer's VirtualView of each frame)."""
        if self._robot is None:
            from model.robot import RobotModel
            from offline_training.sim.assets import asset_path

            self._robot = RobotModel.from_file(asset_path(*ROBOT_URDF))
            self._engine = create_engine(self.engine, **self.options)
        assert self._engine is not None  # created with the robot
        layer = RobotLayer(robot_config_from_params(node_defaults()))
        # the URDF loaded once for all layers (the same model a /robot_description message would build)
        layer.set_model(self._robot, "the task's Panda URDF")
        # base frame = world frame (task.py), so the camera's pose in the base is its world pose
        layer.add_transform(self._robot.root_link, CAMERA_FRAME, camera_pose(task.config), 0, static=True)
        rgb, depth, K = demos.rgb[index], demos.depth[index], task.K_render
        T_dst_src = resolve_target(target, depth, K, 1)[0]
        frames, views = [], []
        for step, qpos in enumerate(demos.qpos[index]):
            stamp_ns = (step + 1) * STEP_NS
            joints = task.robot_joint_positions(qpos)
            layer.add_joint_state(stamp_ns, list(joints), list(joints.values()))
            view = layer.virtual_view(rgb[step], depth[step], K, CAMERA_FRAME, stamp_ns, T_dst_src, depth.shape[1:])
            if view is None:
                raise RuntimeError(f"the robot layer made no view of demonstration {index}: {dict(layer.counters)}")
            frames.append(self._engine.generate(view.request)[0])
            views.append(view)
        return np.stack(frames), views

    def __call__(self, task: ReachTask, demos: Demonstrations, index: int, target: OrbitTarget) -> np.ndarray:
        return downsample(self.render(task, demos, index, target)[0], task.config.render_scale)


def raw_warp_views(task: ReachTask, demos: Demonstrations, index: int, target: OrbitTarget) -> np.ndarray:
    """The geometric warp alone: holes stay black (what every engine starts from)."""
    view = prepare_virtual_view(demos.rgb[index], demos.depth[index], task.K_render, target)
    return downsample(view.request.warped_rgb, task.config.render_scale)


def oracle_views(task: ReachTask, demos: Demonstrations, index: int, target: OrbitTarget) -> np.ndarray:
    """True renders of the demonstration's states from the viewpoint (the upper bound for any engine)."""
    T_world_dst = orbit_pose(camera_pose(task.config), target)
    data = task.new_data()
    frames = []
    for qpos in demos.qpos[index]:
        task.set_qpos(data, qpos)
        frames.append(task.observe(data, T_world_dst))
    return np.stack(frames)


# Variant name -> where its extra views come from (None: the training camera only). One line per engine.
VIEW_SOURCES: dict[str, ViewSource | None] = {
    "original": None,
    "warp-raw": raw_warp_views,
    "warp-pushpull": EngineViews("warp", {"inpaint": "pushpull"}),
    "warp-telea": EngineViews("warp", {"inpaint": "telea"}),
    "torch-tiny": EngineViews("torch"),  # CPU threads: the process setting (bench-policy --threads)
    "robot-aware": RobotAwareViews("warp", {"inpaint": "pushpull"}),  # differs from warp-pushpull by the robot layer
    "oracle": oracle_views,
}


def extra_views(
    task: ReachTask, demos: Demonstrations, viewpoints: list[list[OrbitTarget]], source: ViewSource
) -> np.ndarray:
    """(E, V, T, s, s, 3) uint8: every demonstration from each of its V viewpoints."""
    views = np.empty((len(viewpoints), len(viewpoints[0])) + demos.images.shape[1:], np.uint8)
    for index, targets in enumerate(viewpoints):
        for slot, target in enumerate(targets):
            views[index, slot] = source(task, demos, index, target)
    return views


def psnr(images: np.ndarray, reference: np.ndarray) -> float:
    """PSNR (dB) over all pixels of two uint8 image stacks."""
    mse = np.mean((images.astype(np.float64) - reference.astype(np.float64)) ** 2)
    return float(10.0 * np.log10(255.0**2 / max(float(mse), 1e-10)))
