"""Composition of the robot-aware virtual view from a source RGB-D frame and the robot drawn from its model.

The scene is the source pixels not on the robot (the rendered source mask, dilated a little to take its mixed edge
pixels too), optionally completed behind the robot from the static-scene memory, warped to the virtual camera. The
robot is rendered in the virtual camera from its model; each of its pixels takes the source colour where the source
camera saw that surface point (checked against the model's depth in the source view, and the sensor's depth), and
elsewhere an appearance fitted on the seen pixels (so it is shaded to match; see `compose_robot_view`).
A z-test decides robot or scene per pixel; what neither covers stays a hole for the engine. The interaction mask is
the visible rendered robot plus, given the gripper's position, the scene within reach of it.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import cv2
import numpy as np

from model.geometry import DEFAULT_SETTINGS, WarpResult, WarpSettings, forward_warp_clip

from . import kernels
from .appearance import NUM_TERMS, AppearanceCache, fit_appearance, harmonic_moments, shade_unseen
from .model import RobotRender
from .stages import stage


@dataclasses.dataclass(frozen=True)
class RobotComposite:
    """The virtual view with the robot layer (all (h, w) at the output size).

    Attributes:
        rgb: (h, w, 3) uint8, 0 in holes. depth: float32 metres, 0 in holes. mask: bool, a pixel is filled.
        coverage: float32 [0, 1], the scene warp's confidence; 1 on the robot.
        robot: bool, the robot is drawn here (after the z-test). robot_seen: bool, robot pixels coloured from the
        source view (the rest of ``robot`` has a fitted appearance). interaction: float32 {0, 1}, the robot plus
        the scene within reach of the gripper.
    """

    rgb: np.ndarray
    depth: np.ndarray
    mask: np.ndarray
    coverage: np.ndarray
    robot: np.ndarray
    robot_seen: np.ndarray
    interaction: np.ndarray


@dataclasses.dataclass(frozen=True)
class CompositionSettings:
    """dilate_px: the source robot mask is grown by this much before the scene is cut out (edge pixels mix robot
    and background colour and depth). depth_tolerance_m: a surface point counts as seen by the source when its depth
    there is within this (plus 1 % of the distance) of the model's and the sensor's. reach_m: scene points this close
    to the gripper join the interaction mask."""

    dilate_px: int = 3
    depth_tolerance_m: float = 0.02
    reach_m: float = 0.12


# a surface seen this obliquely by the source (cosine of the angle to its view ray) gives no reliable colour
_MIN_FACING_COS = 0.2
# model against model is exact up to rasterisation and the source view's coarse mesh (`model.COARSE_CELL_M`: within
# 4 mm at the 99th percentile on the Panda): a tight test keeps the far side of thin parts out
_MODEL_DEPTH_TOLERANCE_M = 0.005
_MIN_SEEN_PIXELS = 20


def robot_box(render: RobotRender, margin: int = 0) -> tuple[int, int, int, int]:
    """(v_lo, v_hi, u_lo, u_hi), exclusive ends, holding every robot pixel of ``render`` grown by ``margin`` pixels
    and clipped to the image; empty (v_lo == v_hi) without robot pixels."""
    return mask_box(render.mask, render.box, margin)


def mask_box(
    mask: np.ndarray, box: tuple[int, int, int, int] | None = None, margin: int = 0
) -> tuple[int, int, int, int]:
    """(v_lo, v_hi, u_lo, u_hi), exclusive ends, holding every pixel of ``mask`` grown by ``margin`` pixels and
    clipped to the image; empty (v_lo == v_hi) without any. ``box``: a box known to hold them (`RobotRender.box`),
    else it is found from the mask."""
    height, width = mask.shape
    if box is None:
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        box = (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1) if len(rows) else (0, 0, 0, 0)
    if box[0] >= box[1] or box[2] >= box[3]:
        return 0, 0, 0, 0
    return max(box[0] - margin, 0), min(box[1] + margin, height), max(box[2] - margin, 0), min(box[3] + margin, width)


def _morphology(operation, mask: np.ndarray, box: tuple[int, int, int, int], pixels: int) -> np.ndarray:
    """cv2 ``operation`` (dilate, erode) of ``mask`` with a (2 pixels + 1)^2 square, computed only in ``box`` (which
    must hold every mask pixel with a margin of ``pixels``: then the result is the full image's)."""
    out = np.zeros(mask.shape, bool)
    v_lo, v_hi, u_lo, u_hi = box
    if v_lo < v_hi and u_lo < u_hi:
        crop = np.ascontiguousarray(mask[v_lo:v_hi, u_lo:u_hi]).view(np.uint8)
        out[v_lo:v_hi, u_lo:u_hi] = operation(crop, np.ones((2 * pixels + 1,) * 2, np.uint8)).view(bool)
    return out


def scene_source(
    rgb: np.ndarray,
    depth: np.ndarray,
    robot_src: RobotRender,
    dilate_px: int,
    memory_rgb: np.ndarray | None = None,
    memory_depth: np.ndarray | None = None,
    depth_tolerance_m: float = CompositionSettings.depth_tolerance_m,
    reliability: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, bool]:
    """The source frame with the robot (dilated by ``dilate_px``) cut out, depth 0 there, filled from the memory
    where it has a background behind the rendered robot; its reliability (`model.geometry.repair_depth`, or None)
    cut the same way; and whether any pixel keeps a depth.

    Only the robot the sensor sees is cut: where the sensor measures a surface more than ``depth_tolerance_m`` (+1 %)
    in front of the rendered robot (a table edge, an object, the robot's base behind furniture) that surface is
    scene, and it stays, so it still hides the robot in the virtual view; the dilation (for mixed edge pixels) does
    not take it either."""
    out_rgb, out_depth = rgb.copy(), np.array(depth, np.float32)
    v_lo, v_hi, u_lo, u_hi = robot_box(robot_src, max(dilate_px, 0))
    with stage("dilate mask"):
        # in the box only (it holds the robot with the dilation's margin): the same result as on the whole image
        measured, model = out_depth[v_lo:v_hi, u_lo:u_hi], robot_src.depth[v_lo:v_hi, u_lo:u_hi]
        occluded = (measured > 0) & (measured < model * np.float32(0.99) - np.float32(depth_tolerance_m))
        cut = robot_src.mask[v_lo:v_hi, u_lo:u_hi] & ~occluded
        if dilate_px > 0 and cut.size:
            cut = cv2.dilate(cut.view(np.uint8), np.ones((2 * dilate_px + 1,) * 2, np.uint8)).view(bool) & ~occluded
    use_memory = memory_depth is not None
    # the cut pixels hold no depth (reliability does not matter) or the memory's background: depth the memory saw
    # agree over several frames (`StaticSceneMemory.min_observations`), not a guess this frame's repair made beside a
    # depth edge, so reliable
    out_reliability = None if reliability is None else np.array(reliability, np.float32)
    kernels.cut_scene(
        cut,
        robot_src.depth,
        memory_rgb if use_memory else rgb,
        memory_depth if use_memory else robot_src.depth,
        use_memory,
        v_lo,
        u_lo,
        out_rgb,
        out_depth,
        out_reliability is not None,
        out_depth if out_reliability is None else out_reliability,  # (a typed stand-in when there is none)
    )
    return out_rgb, out_depth, out_reliability, kernels.any_positive(out_depth)


def compose_robot_view(
    src_rgb: np.ndarray,
    src_depth: np.ndarray,
    K_src: np.ndarray,
    K_dst: np.ndarray,
    T_dst_src: np.ndarray,
    out_hw: Sequence[int],
    robot_src: RobotRender,
    robot_dst: RobotRender,
    part_link: np.ndarray,
    settings: CompositionSettings = CompositionSettings(),
    memory_rgb: np.ndarray | None = None,
    memory_depth: np.ndarray | None = None,
    gripper_src: np.ndarray | None = None,
    warp_settings: WarpSettings = DEFAULT_SETTINGS,
    reliability: np.ndarray | None = None,
    appearance_cache: AppearanceCache | None = None,
    warp_threads: int = 1,
) -> RobotComposite:
    """The robot-aware virtual view of one frame (see the module docstring).

    Robot colour: seen pixels (the surface point projects into the eroded source silhouette, at a depth matching the
    model's source depth and the sensor's, facing the source) take the bilinear source colour. Unseen pixels take an
    appearance fitted on the seen ones (`model.robot.appearance`: the albedo of their material part if it was seen,
    else of their link, else of the whole robot, times an irradiance quadratic in the normal, in the source camera's
    frame where the lighting is fixed). The model's own colours serve only when (almost) nothing was seen and no
    earlier fit is kept: real robots rarely look like their URDF materials.

    Args:
        src_rgb (H, W, 3) uint8, src_depth (H, W) metres (0 invalid; repaired as the warp wants: flying pixels
            removed, holes filled, see `model.geometry.repair_depth`).
        robot_src: the robot rendered in the source camera (depth and mask); robot_dst: in the virtual camera, with
            colour (normal, and rgb unless ``appearance_cache`` keeps a fit: `RobotModel.render`'s
            ``model_colours``). part_link: the model's `RobotModel.part_link`.
        memory_rgb, memory_depth: the static-scene memory's background in the source view (0 depth where unknown).
        gripper_src: (3,) the gripper's position in the source optical frame, for the interaction mask.
        warp_settings: the scene warp's settings (the depth source's noise: `model.depth_sensor.warp_settings`).
        reliability: (H, W) the repair's reliability of ``src_depth`` (None: every pixel reliable); the scene warp
            lowers the coverage of what lands from unreliable pixels, as the plain path does.
        appearance_cache: keeps the fitted appearance between the frames of a fixed camera and says when to refit
            (`AppearanceCache`); None fits on every call.
        warp_threads: CPU threads of the scene warp (`model.geometry.forward_warp_clip`; same result on any number).
    """
    height, width = int(out_hw[0]), int(out_hw[1])
    with stage("cut scene"):
        scene_rgb, scene_depth, scene_reliability, valid = scene_source(
            src_rgb,
            src_depth,
            robot_src,
            settings.dilate_px,
            memory_rgb,
            memory_depth,
            settings.depth_tolerance_m,
            reliability,
        )
    if valid:
        with stage("scene warp"):
            clip = forward_warp_clip(
                scene_rgb[None],
                scene_depth[None],
                K_src,
                K_dst,
                T_dst_src,
                (height, width),
                settings=warp_settings,
                reliability=None if scene_reliability is None else scene_reliability[None],
                threads=warp_threads,
            )
            scene = WarpResult(clip.image[0], clip.depth[0], clip.mask[0], clip.coverage[0])
    else:  # the robot fills the whole frame
        scene = WarpResult(
            np.zeros((height, width, 3), np.uint8),
            np.zeros((height, width), np.float32),
            np.zeros((height, width), bool),
            np.zeros((height, width), np.float32),
        )

    # per-pixel passes visit only the box holding the virtual view's robot
    box = robot_box(robot_dst)
    with stage("project source colour"):
        seen = np.zeros((height, width), bool)
        colour = np.empty((height, width, 3), np.float32)  # written where seen
        normal_src = np.empty((height, width, 3), np.float32)  # written on the robot
        interior = _morphology(cv2.erode, robot_src.mask, robot_box(robot_src, 1), 1)
        kernels.sample_source(
            robot_dst.depth,
            robot_dst.mask,
            robot_dst.normal,
            np.asarray(K_dst, float),
            np.linalg.inv(T_dst_src),
            src_rgb,
            np.asarray(src_depth, np.float32),
            robot_src.depth,
            interior,
            np.asarray(K_src, float),
            _MODEL_DEPTH_TOLERANCE_M,
            settings.depth_tolerance_m,
            _MIN_FACING_COS,
            *box,
            seen,
            colour,
            normal_src,
        )
    with stage("appearance fit"):
        num_parts = len(part_link)
        fitted = None if appearance_cache is None else appearance_cache.lookup(num_parts)
        if fitted is None:
            gram, rhs = np.zeros((num_parts, NUM_TERMS, NUM_TERMS)), np.zeros((num_parts, NUM_TERMS, 3))
            harmonic_moments(seen, colour, normal_src, robot_dst.part, *box, gram, rhs)
            if gram[:, 0, 0].sum() >= _MIN_SEEN_PIXELS:
                fitted = fit_appearance(gram, rhs, part_link)
                if appearance_cache is not None:
                    appearance_cache.store(fitted, num_parts)
            elif appearance_cache is not None:
                # too little seen to fit: an earlier frame's fit beats the model's colours
                fitted = appearance_cache.latest(num_parts)
        if fitted is not None:
            shade_unseen(
                robot_dst.mask,
                seen,
                normal_src,
                robot_dst.part,
                part_link,
                fitted.albedo,
                fitted.observed,
                fitted.irradiance,
                *box,
                colour,
            )
        else:  # (almost) nothing seen, nor fitted before: the model's own colours
            if robot_dst.rgb is None:
                raise ValueError(
                    "compose_robot_view: robot_dst has no model colours (rendered with model_colours=False), and the "
                    "source saw too little of the robot to fit its appearance and no earlier fit is kept: render "
                    "robot_dst with model_colours=True while appearance_cache.latest(...) is None"
                )
            unseen = robot_dst.mask & ~seen
            colour[unseen] = robot_dst.rgb[unseen]

    with stage("z-test merge"):
        # in place: the scene warp's arrays are this call's own, and each pixel is read before it is written, so they
        # become the composite's without four full-frame copies
        rgb, depth, mask, coverage = scene.image, scene.depth, scene.mask, scene.coverage
        robot = np.zeros((height, width), bool)
        kernels.merge(
            robot_dst.mask,
            robot_dst.depth,
            colour,  # every robot pixel has its colour now
            scene.image,
            scene.depth,
            scene.mask,
            scene.coverage,
            settings.depth_tolerance_m,
            *box,
            rgb,
            depth,
            mask,
            coverage,
            robot,
        )
    with stage("interaction mask"):
        interaction = robot.astype(np.float32)
        if gripper_src is not None:
            gripper_dst = T_dst_src[:3, :3] @ np.asarray(gripper_src, float) + T_dst_src[:3, 3]
            v, u = np.nonzero(mask & ~robot)  # the scene's pixels: the merge left them as they were
            z = depth[v, u].astype(np.float64)
            points = np.stack([(u - K_dst[0, 2]) * z / K_dst[0, 0], (v - K_dst[1, 2]) * z / K_dst[1, 1], z], axis=1)
            near = np.linalg.norm(points - gripper_dst, axis=1) < settings.reach_m
            interaction[v[near], u[near]] = 1.0
    return RobotComposite(rgb, depth, mask, coverage, robot, seen & robot, interaction)
