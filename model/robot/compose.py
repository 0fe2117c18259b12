"""Composition of the robot-aware virtual view from a source RGB-D frame and the robot drawn from its model.

The scene is the source pixels not on the robot (the rendered source mask, dilated a little to take its mixed edge
pixels too), optionally completed behind the robot from the static-scene memory, warped to the virtual camera. The
robot is rendered in the virtual camera from its model; each of its pixels takes the source colour where the source
camera saw that surface point (checked against the model's depth in the source view, and the sensor's depth), and
elsewhere the model's own colour with a per-channel gain measured on the seen pixels (so it is shaded to match).
A z-test decides robot or scene per pixel; what neither covers stays a hole for the engine. The interaction mask is
the visible rendered robot plus, given the gripper's position, the scene within reach of it.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import cv2
import numpy as np

from model.geometry import WarpResult, forward_warp

from .model import RobotRender


@dataclasses.dataclass(frozen=True)
class RobotComposite:
    """The virtual view with the robot layer (all (h, w) at the output size).

    Attributes:
        rgb: (h, w, 3) uint8, 0 in holes. depth: float32 metres, 0 in holes. mask: bool, a pixel is filled.
        coverage: float32 [0, 1], the scene warp's confidence; 1 on the robot.
        robot: bool, the robot is drawn here (after the z-test). robot_seen: bool, robot pixels coloured from the
        source view (the rest of ``robot`` uses the model's colour). interaction: float32 {0, 1}, the robot plus
        the scene within reach of the gripper. scene: the scene-only warp.
    """

    rgb: np.ndarray
    depth: np.ndarray
    mask: np.ndarray
    coverage: np.ndarray
    robot: np.ndarray
    robot_seen: np.ndarray
    interaction: np.ndarray
    scene: WarpResult


@dataclasses.dataclass(frozen=True)
class CompositionSettings:
    """dilate_px: the source robot mask is grown by this much before the scene is cut out (edge pixels mix robot
    and background colour and depth). depth_tolerance_m: a surface point counts as seen by the source when its depth
    there is within this (plus 1 % of the distance) of the model's and the sensor's. reach_m: scene points this close
    to the gripper join the interaction mask."""

    dilate_px: int = 3
    depth_tolerance_m: float = 0.02
    reach_m: float = 0.12


def scene_source(rgb: np.ndarray, depth: np.ndarray, robot_src: RobotRender, dilate_px: int,
                 memory_rgb: np.ndarray | None = None, memory_depth: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The source frame with the robot cut out (depth 0 there), filled from memory where it has the background."""
    cut = robot_src.mask
    if dilate_px > 0:
        cut = cv2.dilate(cut.astype(np.uint8), np.ones((2 * dilate_px + 1,) * 2, np.uint8)).astype(bool)
    depth = np.where(cut, np.float32(0), depth).astype(np.float32)
    if memory_depth is not None:
        # the background must lie behind what hides it (the robot's rendered depth, where there is one)
        behind = cut & (memory_depth > 0) & ((robot_src.depth == 0) | (memory_depth > robot_src.depth))
        rgb = np.where(behind[..., None], memory_rgb, rgb)
        depth = np.where(behind, memory_depth, depth)
    return rgb, depth


# a surface seen this obliquely by the source (cosine of the angle to its view ray) gives no reliable colour
_MIN_FACING_COS = 0.2
_MODEL_DEPTH_TOLERANCE_M = 0.005
_MIN_SEEN_PIXELS = 20


def _lift(u: np.ndarray, v: np.ndarray, z: np.ndarray, K: np.ndarray) -> np.ndarray:
    return np.stack([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z], axis=1)


def _bilinear(image: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    u0, v0 = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    fu, fv = (u - u0)[:, None], (v - v0)[:, None]
    height, width = image.shape[:2]
    u0, v0 = np.clip(u0, 0, width - 2), np.clip(v0, 0, height - 2)
    image = image.astype(np.float32)
    return ((1 - fu) * (1 - fv) * image[v0, u0] + fu * (1 - fv) * image[v0, u0 + 1]
            + (1 - fu) * fv * image[v0 + 1, u0] + fu * fv * image[v0 + 1, u0 + 1])


def _fit_appearance(colour: np.ndarray, group: np.ndarray, normal: np.ndarray, num_groups: int,
                    ridge: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares appearance model colour ~ base[group] + normal @ slope from observed pixels: an albedo per group
    under one world-fixed distant lighting, taken as linear in the normal (the seen normals cover only the half
    facing the source; higher spherical-harmonic bands fit them better but extrapolate wildly to the other half).
    Returns base (G, 3), slope (3, 3) and which groups were observed (G,) bool."""
    observed_parts, index = np.unique(group, return_inverse=True)
    design = np.zeros((len(colour), len(observed_parts) + 3))
    design[np.arange(len(colour)), index] = 1.0
    design[:, len(observed_parts):] = normal
    gram = design.T @ design + ridge * np.eye(design.shape[1])
    solution = np.linalg.solve(gram, design.T @ colour)
    base = np.zeros((num_groups, 3))
    base[observed_parts] = solution[:len(observed_parts)]
    observed = np.zeros(num_groups, bool)
    observed[observed_parts] = True
    return base, solution[len(observed_parts):], observed


def robot_appearance(robot_dst: RobotRender, K_dst: np.ndarray, robot_src: RobotRender, src_rgb: np.ndarray,
                     src_depth: np.ndarray, K_src: np.ndarray, T_src_dst: np.ndarray, part_link: np.ndarray,
                     depth_tolerance_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Colour of the robot's virtual-view pixels: (rgb (h, w, 3) uint8, seen (h, w) bool).

    Seen pixels: the surface point projects into the source image inside the (eroded) source robot silhouette, at a
    depth that matches the model's source depth and the sensor's; they take the source colour. Unseen pixels take an
    appearance fitted on the seen pixels (`_fit_appearance`, normals in the source camera's frame, where the lighting
    is fixed): of their material part if it was seen, else of their link, else of the whole robot. The model's own
    colours are used only when (almost) nothing was seen: real robots rarely look like their URDF materials.
    ``part_link`` (P,): `RobotModel.part_link`.
    """
    v, u = np.nonzero(robot_dst.mask)
    points_src = _lift(u.astype(np.float64), v.astype(np.float64), robot_dst.depth[v, u].astype(np.float64), K_dst)
    points_src = points_src @ T_src_dst[:3, :3].T + T_src_dst[:3, 3]
    z = points_src[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        us = K_src[0, 0] * points_src[:, 0] / z + K_src[0, 2]
        vs = K_src[1, 1] * points_src[:, 1] / z + K_src[1, 2]
    height, width = src_depth.shape
    inside = (z > 0) & (us >= 0) & (us <= width - 1) & (vs >= 0) & (vs <= height - 1)
    ui = np.clip(np.rint(us), 0, width - 1).astype(np.int64)
    vi = np.clip(np.rint(vs), 0, height - 1).astype(np.int64)
    interior = cv2.erode(robot_src.mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    model_depth, sensor_depth = robot_src.depth[vi, ui], src_depth[vi, ui]
    # model against model is exact up to rasterisation: a tight test keeps the far side of thin parts out
    model_ok = np.abs(model_depth - z) < _MODEL_DEPTH_TOLERANCE_M + 0.005 * z
    sensor_ok = ~(sensor_depth > 0) | (np.abs(sensor_depth - z) < depth_tolerance_m + 0.01 * z)  # none: trust model
    normal = robot_dst.normal[v, u].astype(np.float64) @ T_src_dst[:3, :3].T  # in the source frame
    facing = np.einsum("ij,ij->i", normal, points_src) < -_MIN_FACING_COS * np.linalg.norm(points_src, axis=1)
    seen = inside & interior[vi, ui] & model_ok & sensor_ok & facing

    colour = robot_dst.rgb[v, u].astype(np.float64)
    sampled = _bilinear(src_rgb, us[seen], vs[seen]).astype(np.float64)
    if seen.sum() >= _MIN_SEEN_PIXELS:
        part = robot_dst.part[v, u]
        left = ~seen
        for group in (part, part_link[part], np.zeros_like(part)):  # finest appearance first
            base, slope, observed = _fit_appearance(sampled, group[seen], normal[seen], int(group.max()) + 1)
            fitted = left & observed[group]
            colour[fitted] = base[group[fitted]] + normal[fitted] @ slope
            left &= ~fitted
    colour[seen] = sampled
    rgb = np.zeros_like(robot_dst.rgb)
    rgb[v, u] = np.clip(colour + 0.5, 0, 255).astype(np.uint8)
    seen_image = np.zeros(robot_dst.mask.shape, bool)
    seen_image[v[seen], u[seen]] = True
    return rgb, seen_image


def compose_robot_view(src_rgb: np.ndarray, src_depth: np.ndarray, K_src: np.ndarray, K_dst: np.ndarray,
                       T_dst_src: np.ndarray, out_hw: Sequence[int], robot_src: RobotRender, robot_dst: RobotRender,
                       part_link: np.ndarray, settings: CompositionSettings = CompositionSettings(),
                       memory_rgb: np.ndarray | None = None, memory_depth: np.ndarray | None = None,
                       gripper_src: np.ndarray | None = None) -> RobotComposite:
    """The robot-aware virtual view of one frame (see the module docstring).

    Args:
        src_rgb (H, W, 3) uint8, src_depth (H, W) metres (0 invalid; holes already filled as the warp wants).
        robot_src: the robot rendered in the source camera (depth and mask); robot_dst: in the virtual camera, with
            colour. part_link: the model's `RobotModel.part_link`.
        memory_rgb, memory_depth: the static-scene memory's background in the source view (0 depth where unknown).
        gripper_src: (3,) the gripper's position in the source optical frame, for the interaction mask.
    """
    height, width = int(out_hw[0]), int(out_hw[1])
    scene_rgb, scene_depth = scene_source(src_rgb, src_depth, robot_src, settings.dilate_px, memory_rgb, memory_depth)
    if (scene_depth > 0).any():
        scene = forward_warp(scene_rgb, scene_depth, K_src, K_dst, T_dst_src, (height, width))
    else:  # the robot fills the whole frame
        scene = WarpResult(np.zeros((height, width, 3), np.uint8), np.zeros((height, width), np.float32),
                           np.zeros((height, width), bool), np.zeros((height, width), np.float32))
    T_src_dst = np.linalg.inv(T_dst_src)
    robot_rgb, seen = robot_appearance(robot_dst, K_dst, robot_src, src_rgb, src_depth, K_src, T_src_dst, part_link,
                                       settings.depth_tolerance_m)
    robot = robot_dst.mask & (~scene.mask | (robot_dst.depth <= scene.depth + settings.depth_tolerance_m))
    rgb = np.where(robot[..., None], robot_rgb, scene.image)
    depth = np.where(robot, robot_dst.depth, scene.depth)
    coverage = np.where(robot, np.float32(1), scene.coverage)
    interaction = robot.copy()
    if gripper_src is not None:
        gripper_dst = T_dst_src[:3, :3] @ np.asarray(gripper_src, float) + T_dst_src[:3, 3]
        v, u = np.nonzero(scene.mask & ~robot)
        points = _lift(u.astype(np.float64), v.astype(np.float64), scene.depth[v, u].astype(np.float64), K_dst)
        near = np.linalg.norm(points - gripper_dst, axis=1) < settings.reach_m
        interaction[v[near], u[near]] = True
    return RobotComposite(rgb.astype(np.uint8), depth.astype(np.float32), robot | scene.mask,
                          coverage.astype(np.float32), robot, seen & robot, interaction.astype(np.float32), scene)
