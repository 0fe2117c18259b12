"""The robot layer of the virtual camera, for every transport (node, augment-bag, DDS runner): ROS-free.

Transports feed it what they receive under the standard names (`/robot_description`, `/joint_states`, `/tf`,
`/tf_static`) and ask it for each frame's virtual view; it answers None whenever the frame must be made the plain
way, and says why in its counters (for /diagnostics):

    layer = RobotLayer(RobotLayerConfig(enable="auto"))
    layer.set_robot_description(urdf_text)            # or RobotLayerConfig(urdf_path=...)
    layer.add_joint_state(stamp_ns, names, positions)
    layer.add_transform(parent, child, T_parent_child, stamp_ns, static)
    view = layer.virtual_view(rgb, depth, K_src, frame_id, stamp_ns, T_dst_src, out_hw) or prepare_virtual_view(...)

Bad input never takes the caller down: a URDF that does not parse or names a missing mesh is one warning naming it
and the layer stays off; missing or stale joint states and missing TF are counted and that frame is made without the
robot layer. A hand-eye check against the source depth runs every `hand_eye_every` frames on a worker thread (the frame
does not wait for it) and WARNs with the offset.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections import Counter
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from embody4d_ros.conversions import stamp_to_ns
from embody4d_ros.joint_states import JointStateBuffer
from embody4d_ros.tf_buffer import TfBuffer, TfError, camera_from_root
from model.engines.base import GenerationRequest
from model.geometry import (
    DEFAULT_SETTINGS,
    GeometryError,
    PinholeCamera,
    WarpResult,
    WarpSettings,
    fill_depth_holes,
    pose_to_matrix,
    repair_depth,
)
from model.virtual_view import VirtualView

_LOG = logging.getLogger(__name__)
ENABLE_VALUES = ("auto", "true", "false")
# the standard names (DESIGN.md contract 5) a transport feeds to `RobotLayer.feed_message`
ROBOT_DESCRIPTION, JOINT_STATES, TF, TF_STATIC = "/robot_description", "/joint_states", "/tf", "/tf_static"
ROBOT_TOPICS = (ROBOT_DESCRIPTION, JOINT_STATES, TF, TF_STATIC)
WARP_FIELDS = tuple(field.name for field in dataclasses.fields(WarpResult))


@dataclasses.dataclass
class RobotLayerConfig:
    """The `robot.*` parameters.

    Attributes:
        enable: "auto" (on once a robot description, joint states and the camera's TF are there), "true" (the same,
            but a missing piece is a warning, not silence), "false".
        urdf_path: a URDF file used instead of `/robot_description`.
        mesh_search_paths: extra directories for `package://` and relative mesh URIs.
        camera_frame: the colour camera's optical frame in TF; empty: the image's header frame_id.
        T_camera_root: [x, y, z, qx, qy, qz, qw] of the URDF root in the camera's optical frame, overriding TF.
        joint_slop_s: the newest joint state may be this much older (or newer) than the frame.
        tf_tolerance_s: a time-stamped transform this far outside its history still serves (nearest).
        scene_memory: remember the background behind the robot (fixed camera).
        hand_eye_every: start the hand-eye check (on a worker thread) every this many drawn frames (0: never).
        hand_eye_tolerance_m: offset above which the check warns.
        gripper_link: the link whose origin is the gripper, for the interaction mask's reach (empty: robot only).
        depth_fill_px: sensor depth is repaired before the scene warp as the plain path does (`repair_depth`: flying
            pixels removed, holes up to this wide filled, guesses at depth edges marked unreliable); 0 disables.
        own_frames: frames the virtual camera publishes itself (its virtual optical frame): their transforms, which
            come back on /tf_static, are not the robot's and are not fed to the TF buffer.
        warp_threads: CPU threads of the scene warp (the node's `warp_threads`; same result on any number).
    """

    enable: str = "auto"
    urdf_path: str = ""
    mesh_search_paths: Sequence[str] = ()
    camera_frame: str = ""
    T_camera_root: Sequence[float] | None = None
    joint_slop_s: float = 0.02
    tf_tolerance_s: float = 0.05
    scene_memory: bool = True
    hand_eye_every: int = 30
    hand_eye_tolerance_m: float = 0.01
    gripper_link: str = ""
    depth_fill_px: int = 32
    own_frames: Sequence[str] = ()
    warp_threads: int = 1

    def __post_init__(self) -> None:
        if str(self.enable).lower() not in ENABLE_VALUES:
            raise ValueError(f"robot.enable must be one of {ENABLE_VALUES}, got {self.enable!r}")
        self.enable = str(self.enable).lower()
        if self.T_camera_root is not None and len(self.T_camera_root) != 7:
            raise ValueError(f"robot.T_camera_root must be [x, y, z, qx, qy, qz, qw], got {list(self.T_camera_root)}")


def config_from_params(params: Mapping[str, Any]) -> RobotLayerConfig:
    """The `robot.*` node parameters (`embody4d_ros.params`) as a RobotLayerConfig."""
    override = params["robot.T_camera_root"]
    return RobotLayerConfig(
        enable=params["robot.enable"],
        urdf_path=params["robot.urdf_path"],
        mesh_search_paths=[p for p in params["robot.mesh_search_paths"].split(os.pathsep) if p],
        camera_frame=params["robot.camera_frame"],
        T_camera_root=override if any(override[3:]) else None,
        joint_slop_s=params["robot.joint_slop_s"],
        scene_memory=params["robot.scene_memory"],
        hand_eye_every=params["robot.hand_eye_every"],
        hand_eye_tolerance_m=params["robot.hand_eye_tolerance_m"],
        gripper_link=params["robot.gripper_link"],
        depth_fill_px=32,
        own_frames=(params["virtual_frame_id"],),
        warp_threads=params["warp_threads"],
    )


def _transform_matrix(transform: Any) -> np.ndarray:
    """geometry_msgs/Transform -> (4, 4)."""
    t, q = transform.translation, transform.rotation
    return pose_to_matrix([t.x, t.y, t.z, q.x, q.y, q.z, q.w])


class _NotDrawable(Exception):
    """The robot cannot be drawn at this frame: `reason` (a counter name) and a `detail` for the log."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


class RobotLayer:
    """See the module docstring. ``counters`` counts frames by outcome: "drawn", and the reasons a frame was made
    without the robot layer ("no_robot_model", "joint_state_missing", "joint_state_stale", "tf_missing",
    "robot_layer_error"); ``on_count`` receives each of them as it happens."""

    def __init__(
        self,
        config: RobotLayerConfig | None = None,
        logger: logging.Logger = _LOG,
        on_count: Callable[[str], None] | None = None,
    ) -> None:
        from model.robot.appearance import AppearanceCache
        from model.robot.calibration import BackgroundHandEyeCheck, HandEyeMonitor
        from model.robot.scene_memory import StaticSceneMemory

        self.config = config or RobotLayerConfig()
        self.logger = logger
        self.model = None
        self.model_error = ""
        self.counters: Counter[str] = Counter()
        self._on_count = on_count  # mirrors every count (the runtime's stats, hence /diagnostics)
        self.tf = TfBuffer(tolerance_ns=int(self.config.tf_tolerance_s * 1e9))
        self.joints = JointStateBuffer(slop_ns=int(self.config.joint_slop_s * 1e9))
        self.memory = StaticSceneMemory() if self.config.scene_memory else None
        self.appearance = AppearanceCache()  # the robot's fitted appearance, refitted every few frames
        self.hand_eye = BackgroundHandEyeCheck(HandEyeMonitor(self.config.hand_eye_tolerance_m, logger=logger))
        self._override = None if self.config.T_camera_root is None else pose_to_matrix(list(self.config.T_camera_root))
        self._warned: set[str] = set()
        self._description = ""
        self._lock = threading.Lock()  # transports feed from their callback threads while frames are made
        if self.config.enable != "false" and self.config.urdf_path:
            self._load(
                lambda: self._model_class().from_file(self.config.urdf_path, self.config.mesh_search_paths),
                f"robot.urdf_path '{self.config.urdf_path}'",
            )

    @staticmethod
    def _model_class():
        from model.robot import RobotModel

        return RobotModel

    def _load(self, build, what: str) -> None:
        from model.robot import RobotModelError
        from model.robot.appearance import AppearanceCache

        try:
            model = build()
        except ImportError as error:
            model, self.model_error = None, f"{what}: {error}; install the robot extra: pip install trimesh pycollada"
        except (RobotModelError, OSError) as error:
            model, self.model_error = None, f"{what}: {error}"
        if model is not None and self.config.gripper_link and self.config.gripper_link not in model.links:
            self.model_error = (
                f"{what}: robot.gripper_link '{self.config.gripper_link}' is not a link "
                f"of the robot (links: {', '.join(model.links)})"
            )
            model = None
        with self._lock:
            self.model = model
            self.appearance = AppearanceCache()  # the last robot's fit is not this one's
        if model is None:
            self.logger.warning("robot layer off: %s", self.model_error)
            return
        self.model_error = ""
        self.logger.info(
            "robot layer: %s loaded (%d triangles, root link '%s', joints %s)",
            what,
            model.num_faces,
            model.root_link,
            ", ".join(model.joint_names),
        )

    def set_model(self, model: Any, what: str = "a robot model built in process") -> None:
        """Use an already built robot model (a `model.robot.RobotModel` or `MujocoRobotModel`) instead of a
        `/robot_description`: an MJCF robot has none, and a benchmark reuses one loaded model across many layers. The
        same checks and log lines as a parsed description."""
        self._load(lambda: model, what)

    def set_robot_description(self, urdf: str) -> None:
        """A `/robot_description` message (ignored when a URDF file is configured or the text is unchanged)."""
        if self.config.enable == "false" or self.config.urdf_path or urdf == self._description:
            return
        self._description = urdf
        self._load(
            lambda: self._model_class().from_urdf_string(urdf, self.config.mesh_search_paths), "/robot_description"
        )

    def feed_message(self, topic: str, msg: Any) -> None:
        """A message of one of :data:`ROBOT_TOPICS` (rclpy or rosbags objects: the field names are the same)."""
        if topic == ROBOT_DESCRIPTION:
            self.set_robot_description(str(msg.data))
        elif topic == JOINT_STATES:
            self.add_joint_state(stamp_to_ns(msg.header.stamp), list(msg.name), [float(v) for v in msg.position])
        elif topic in (TF, TF_STATIC):
            for transform in msg.transforms:
                if transform.child_frame_id in self.config.own_frames:
                    continue
                try:
                    T = _transform_matrix(transform.transform)
                except GeometryError as error:  # a zero quaternion
                    self._skip("tf_missing", f"bad transform {transform.child_frame_id}: {error}")
                    continue
                self.add_transform(
                    transform.header.frame_id,
                    transform.child_frame_id,
                    T,
                    stamp_to_ns(transform.header.stamp),
                    static=topic == TF_STATIC,
                )

    def add_joint_state(self, stamp_ns: int, names: Sequence[str], positions: Sequence[float]) -> None:
        with self._lock:
            self.joints.add(stamp_ns, names, positions)

    def add_transform(self, parent: str, child: str, T_parent_child: np.ndarray, stamp_ns: int, static: bool) -> None:
        try:
            with self._lock:
                self.tf.set_transform(parent, child, T_parent_child, stamp_ns, static)
        except TfError as error:
            self._skip("tf_missing", f"bad transform {parent} -> {child}: {error}")

    def joint_states_cover(self, stamp_ns: int) -> bool:
        """Whether joint states at or after ``stamp_ns`` have arrived for every joint of the model (a frame at that
        stamp is then drawn with an interpolated state); True without a model (nothing to wait for)."""
        with self._lock:
            return self.model is None or self.joints.covers(stamp_ns, self.model.joint_names)

    @property
    def active(self) -> bool:
        """Whether frames can be drawn with the robot (a model is loaded and the layer is not disabled)."""
        return self.config.enable != "false" and self.model is not None

    def _count(self, outcome: str) -> None:
        self.counters[outcome] += 1
        if self._on_count is not None:
            self._on_count(outcome)

    def _skip(self, reason: str, detail: str) -> None:
        """Count a frame made without the robot layer; the first time per reason, say why (a warning when the layer
        was asked for explicitly or something is broken, e.g. joint states that stopped or carry another clock; info
        when `auto` merely lacks a piece, as at start-up)."""
        self._count(reason)
        if reason not in self._warned:
            self._warned.add(reason)
            broken = reason in ("robot_layer_error", "joint_state_stale")
            level = logging.WARNING if self.config.enable == "true" or broken else logging.INFO
            self.logger.log(level, "robot layer skipped a frame (%s): %s; further ones are counted", reason, detail)

    def virtual_view(
        self,
        rgb: np.ndarray,
        depth: np.ndarray,
        K_src: np.ndarray,
        frame_id: str,
        stamp_ns: int,
        T_dst_src: np.ndarray,
        out_hw: Sequence[int],
        K_dst: np.ndarray | None = None,
        caption: str | None = None,
        seed: int = 0,
        settings: WarpSettings = DEFAULT_SETTINGS,
    ) -> VirtualView | None:
        """The robot-aware `VirtualView` of one frame (like `model.virtual_view.prepare_virtual_view` for one frame
        and a resolved T_dst_src, with the same warp ``settings``: `model.depth_sensor.warp_settings` for the depth
        source), or None when this frame must be made the plain way (see ``counters``)."""
        if self.config.enable == "false":
            return None
        try:
            model, positions, T_cam_root = self._pose_at(frame_id, stamp_ns)
        except _NotDrawable as missing:
            # `auto` without any robot description is simply a camera without a robot: nothing to count
            if missing.reason != "no_robot_model" or self.model_error or self.config.enable == "true":
                self._skip(missing.reason, missing.detail)
            return None
        try:
            return self._compose(
                model, rgb, depth, K_src, T_dst_src, out_hw, K_dst, positions, T_cam_root, caption, seed, settings
            )
        except Exception as error:  # noqa: BLE001 - whatever breaks in the layer, the frame is still made plainly
            self._skip("robot_layer_error", f"{type(error).__name__}: {error}")
            return None

    def _pose_at(self, frame_id: str, stamp_ns: int) -> tuple[Any, np.ndarray, np.ndarray]:
        """(robot model, joint positions, T_cam_root) at this frame; _NotDrawable names the missing piece."""
        with self._lock:
            model = self.model
            if model is None:
                raise _NotDrawable(
                    "no_robot_model", self.model_error or "no /robot_description and no robot.urdf_path yet"
                )
            joints = self.joints.lookup(stamp_ns, model.joint_names)
            if not joints.ok:
                raise _NotDrawable("joint_state_missing" if joints.missing else "joint_state_stale", joints.reason())
            try:
                T_cam_root = camera_from_root(
                    self.tf, self.config.camera_frame or frame_id, model.root_link, stamp_ns, self._override
                )
            except TfError as error:
                raise _NotDrawable("tf_missing", str(error)) from None
        return model, joints.positions, T_cam_root

    def source_depth(self, K_src: np.ndarray, frame_id: str, stamp_ns: int, hw: Sequence[int]) -> np.ndarray | None:
        """The robot's metric depth (H, W) float32 in the source camera, 0 off the robot: the anchors that scale a
        monocular depth estimate (`model.depth_align`). None when the robot cannot be drawn at this frame (counted
        by `virtual_view`, not here)."""
        if self.config.enable == "false":
            return None
        try:
            model, positions, T_cam_root = self._pose_at(frame_id, stamp_ns)
        except _NotDrawable:
            return None
        return model.render(positions, K_src, T_cam_root, int(hw[0]), int(hw[1]), with_colour=False).depth

    def _compose(
        self, model, rgb, depth, K_src, T_dst_src, out_hw, K_dst, positions, T_cam_root, caption, seed, settings
    ) -> VirtualView:
        from model.robot.compose import compose_robot_view

        height, width = depth.shape
        out_h, out_w = int(out_hw[0]), int(out_hw[1])
        if K_dst is None:
            K_dst = PinholeCamera(K_src, width, height).scaled(out_w, out_h).K
        sensor_depth = depth
        depth, reliability = repair_depth(depth, rgb, self.config.depth_fill_px, settings.max_depth_ratio)
        robot_src = model.render(positions, K_src, T_cam_root, height, width, with_colour=False, coarse=True)
        # the model's own colours only until an appearance is fitted (then the composition never needs them)
        model_colours = self.appearance.latest(len(model.part_link)) is None
        robot_dst = model.render(positions, K_dst, T_dst_src @ T_cam_root, out_h, out_w, model_colours=model_colours)
        memory_rgb = memory_depth = None
        if self.memory is not None:
            memory_rgb, memory_depth = self.memory.background()
        gripper = None
        if self.config.gripper_link:
            gripper = (T_cam_root @ model.link_transforms(positions)[self.config.gripper_link])[:3, 3]
        composite = compose_robot_view(
            rgb,
            depth,
            K_src,
            K_dst,
            T_dst_src,
            (out_h, out_w),
            robot_src,
            robot_dst,
            model.part_link,
            memory_rgb=memory_rgb,
            memory_depth=memory_depth,
            gripper_src=gripper,
            warp_settings=settings,
            reliability=reliability,
            appearance_cache=self.appearance,
            warp_threads=self.config.warp_threads,
        )
        if self.memory is not None:
            self.memory.update(rgb, depth, robot_src.mask, T_cam_root, robot_src.box)
        drawn = self.counters["drawn"]
        if self.config.hand_eye_every > 0 and drawn % self.config.hand_eye_every == 0:
            # the check keeps the depth it is tuned on (holes filled from the farther side, no colour guesses), made
            # only on the frames it runs; the render is read-only; the sensor depth may be the caller's buffer
            # (fill_depth_holes returns its input when there is nothing to fill): the worker gets a copy
            hand_eye_depth = fill_depth_holes(sensor_depth, self.config.depth_fill_px)
            self.hand_eye.submit(robot_src.depth, robot_src.mask, hand_eye_depth.copy(), np.asarray(K_src, float))
        self._count("drawn")
        request = GenerationRequest(
            source_rgb=rgb[None],
            warped_rgb=composite.rgb[None],
            warp_mask=composite.mask[None],
            coverage=composite.coverage[None],
            warped_depth=composite.depth[None],
            source_interaction=robot_src.mask[None].astype(np.float32),
            target_interaction=composite.interaction[None],
            caption=caption,
            seed=seed,
        )
        warp = WarpResult(composite.rgb[None], composite.depth[None], composite.mask[None], composite.coverage[None])
        return VirtualView(
            K_dst=np.asarray(K_dst, float), T_dst_src=np.asarray(T_dst_src, float)[None], warp=warp, request=request
        )


def stack_views(views: Sequence[VirtualView]) -> VirtualView:
    """Single-frame views (robot-aware or plain) as one clip view, frame order kept. A frame without an interaction
    mask (made the plain way) gets an empty one when others have it."""
    first = views[0]

    def stacked(get: Callable[[Any], np.ndarray | None], like: Callable[[Any], np.ndarray]) -> np.ndarray | None:
        arrays = [get(view) for view in views]
        if all(array is None for array in arrays):
            return None
        return np.concatenate(
            [
                array if array is not None else np.zeros(like(view).shape[:3], np.float32)
                for array, view in zip(arrays, views)
            ]
        )

    warp = WarpResult(**{name: np.concatenate([getattr(v.warp, name) for v in views]) for name in WARP_FIELDS})
    request = GenerationRequest(
        source_rgb=np.concatenate([v.request.source_rgb for v in views]),
        warped_rgb=warp.image,
        warp_mask=warp.mask,
        coverage=warp.coverage,
        warped_depth=warp.depth,
        source_interaction=stacked(lambda v: v.request.source_interaction, lambda v: v.request.source_rgb),
        target_interaction=stacked(lambda v: v.request.target_interaction, lambda v: v.request.warped_rgb),
        caption=first.request.caption,
        seed=first.request.seed,
    )
    return VirtualView(
        K_dst=first.K_dst, T_dst_src=np.concatenate([v.T_dst_src for v in views]), warp=warp, request=request
    )
