"""From source RGB-D frames and a target viewpoint to virtual frames: the glue shared by the node, `augment-bag`, the
demo and the evaluator.

    view = prepare_virtual_view(rgb, depth, K_src, OrbitTarget(yaw_deg=15), out_hw=(480, 640))
    frames = engine.generate(view.request)          # or: frames, view = render_virtual_view(engine, ...)

The target camera keeps the source intrinsics rescaled to the output size unless `K_dst` is given. An orbit with
pivot_m = 0 takes one pivot for the whole clip (median centre depth over all frames) so the virtual camera does not
jitter with the scene. A stream (the node) should likewise call `resolve_target` once and pass the resulting
T_dst_src with every frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np

from model.engines.base import Engine, GenerationRequest
from model.geometry import (
    DEFAULT_SETTINGS,
    GeometryError,
    OrbitTarget,
    PinholeCamera,
    PoseTarget,
    WarpResult,
    WarpSettings,
    check_intrinsics,
    forward_warp_clip,
    repair_depth,
    target_transform,
)

# A viewpoint: orbit or pose (docs/DESIGN.md contract 2), or T_dst_src directly as (4, 4) or per frame (T, 4, 4).
Target = Union[OrbitTarget, PoseTarget, np.ndarray]


@dataclass
class VirtualView:
    """Everything computed before the engine runs.

    K_dst: (3, 3) target intrinsics; T_dst_src: (T, 4, 4); warp: WarpResult with a leading T axis at (h, w);
    request: the GenerationRequest built from them.
    """

    K_dst: np.ndarray
    T_dst_src: np.ndarray
    warp: WarpResult
    request: GenerationRequest


def _as_clip(array: np.ndarray, frame_ndim: int, name: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == frame_ndim:
        return array[None]
    if array.ndim != frame_ndim + 1:
        raise GeometryError(
            f"{name} must have {frame_ndim} dims (one frame) or {frame_ndim + 1} (a clip), got shape {array.shape}"
        )
    return array


def resolve_target(target: Target, depth: np.ndarray, K_src: np.ndarray, num_frames: int) -> np.ndarray:
    """T_dst_src as (T, 4, 4) for a target given as orbit, pose or transform(s); depth (T, H, W) metres."""
    if isinstance(target, (OrbitTarget, PoseTarget)):
        # Invalid depth must not reach the pivot's median, so map it to 0 first.
        T = target_transform(target, depth=np.where(np.isfinite(depth), depth, 0.0), K=K_src)
        return np.broadcast_to(T, (num_frames, 4, 4)).copy()
    T = np.asarray(target, dtype=np.float64)
    if T.shape == (4, 4):
        return np.broadcast_to(T, (num_frames, 4, 4)).copy()
    if T.shape == (num_frames, 4, 4):
        return T
    raise GeometryError(
        f"target must be an OrbitTarget, a PoseTarget or T_dst_src of shape (4, 4) or "
        f"({num_frames}, 4, 4), got {T.shape}"
    )


def prepare_virtual_view(
    rgb: np.ndarray,
    depth: np.ndarray,
    K_src: np.ndarray,
    target: Target,
    out_hw: Sequence[int] | None = None,
    K_dst: np.ndarray | None = None,
    fuse_frames: int = 0,
    depth_fill_px: int = 32,
    source_interaction: np.ndarray | None = None,
    caption: str | None = None,
    seed: int = 0,
    settings: WarpSettings = DEFAULT_SETTINGS,
    backend: str = "numba",
    threads: int = 1,
) -> VirtualView:
    """Warp source frames to the target viewpoint and build the engine request.

    Args:
        rgb: (T, H, W, 3) or (H, W, 3) uint8. depth: (T, H, W) or (H, W) metres (0/NaN/inf invalid).
        K_src: (3, 3) intrinsics of rgb (depth aligned to colour).
        target: OrbitTarget, PoseTarget, or T_dst_src (4, 4) / (T, 4, 4).
        out_hw: (h, w) of the virtual image; defaults to the source size.
        K_dst: (3, 3) virtual intrinsics; defaults to K_src rescaled to out_hw.
        fuse_frames: see `model.geometry.forward_warp_clip`.
        depth_fill_px: sensor depth is repaired before warping (`model.geometry.repair_depth`): flying pixels
            removed, invalid runs up to this many pixels wide filled from the neighbour of most similar colour
            (edge bands and infrared shadows beside edges), and those guesses next to depth edges marked unreliable,
            which lowers their coverage (they stay in the warp's mask); 0 disables all three.
        source_interaction: optional (T, H, W) or (H, W) robot-and-object mask in [0, 1]; it is warped too and
            passed to the engine as `target_interaction`.
        threads: CPU threads of the warp (see `model.geometry.forward_warp_clip`).
    Returns:
        VirtualView; its request has a leading T axis even for a single frame.
    """
    if depth is None:
        raise GeometryError(
            "the warp needs depth: pass aligned depth, or configure a monocular depth estimator (depth.source)"
        )
    rgb = _as_clip(rgb, 3, "rgb")
    depth = _as_clip(depth, 2, "depth")
    if rgb.dtype != np.uint8:
        raise GeometryError(f"rgb must be uint8, got {rgb.dtype}")
    if depth.shape != rgb.shape[:3]:
        raise GeometryError(f"depth {depth.shape} must match rgb {rgb.shape[:3]} (align depth to colour first)")
    num_frames, height, width = depth.shape
    K_src = check_intrinsics(K_src, "K_src")
    out_hw = (height, width) if out_hw is None else (int(out_hw[0]), int(out_hw[1]))
    if K_dst is None:
        K_dst = PinholeCamera(K_src, width, height).scaled(out_hw[1], out_hw[0]).K
    K_dst = check_intrinsics(K_dst, "K_dst")
    depth, reliability = repair_depth(depth, rgb, depth_fill_px, settings.max_depth_ratio)
    T_dst_src = resolve_target(target, depth, K_src, num_frames)

    warp = forward_warp_clip(
        rgb,
        depth,
        K_src,
        K_dst,
        T_dst_src,
        out_hw,
        fuse_frames=fuse_frames,
        settings=settings,
        backend=backend,
        reliability=reliability,
        threads=threads,
    )
    target_interaction = None
    if source_interaction is not None:
        source_interaction = _as_clip(source_interaction, 2, "source_interaction").astype(np.float32)
        if source_interaction.shape != depth.shape:
            raise GeometryError(f"source_interaction {source_interaction.shape} must match depth {depth.shape}")
        # the mask rides in all three channels of a float image through the same warp
        mask_image = np.repeat(source_interaction[..., None], 3, axis=-1)
        target_interaction = forward_warp_clip(
            mask_image,
            depth,
            K_src,
            K_dst,
            T_dst_src,
            out_hw,
            fuse_frames=fuse_frames,
            settings=settings,
            backend=backend,
            threads=threads,
        ).image[..., 0]
        source_interaction = source_interaction.clip(0.0, 1.0)
        target_interaction = target_interaction.clip(0.0, 1.0)

    request = GenerationRequest(
        source_rgb=rgb,
        warped_rgb=warp.image,
        warp_mask=warp.mask,
        coverage=warp.coverage,
        warped_depth=warp.depth,
        source_interaction=source_interaction,
        target_interaction=target_interaction,
        caption=caption,
        seed=seed,
    )
    return VirtualView(K_dst=K_dst, T_dst_src=T_dst_src, warp=warp, request=request)


def render_virtual_view(engine: Engine, *args, **kwargs) -> tuple[np.ndarray, VirtualView]:
    """`prepare_virtual_view(*args, **kwargs)` then `engine.generate`: returns ((T, h, w, 3) uint8, VirtualView)."""
    view = prepare_virtual_view(*args, **kwargs)
    return engine.generate(view.request), view
