"""The forward warp front end: validates inputs and hands them to a back end (docs/DESIGN.md contract 1).

Conventions (docs/DESIGN.md): ROS optical frames (x right, y down, z forward); `T_a_b` maps points from frame b into
frame a; K in pixels with pixel centres at integer coordinates; depth in metres where 0, NaN and inf mean "no
measurement". Negative depth is not a missing measurement but a broken input, so it raises `GeometryError`.

The warp lifts every source pixel to 3D and renders the pixel grid as a triangle mesh into the target camera
(`model.geometry.warp_numba` on CPU, `model.geometry.warp_torch` for tensors). Triangles that span a depth
discontinuity are dropped, so disocclusions stay holes instead of being smeared with foreground colour; rasterising
triangles instead of points leaves no cracks when the target magnifies the source; a z-buffer keeps the nearest surface.
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import numpy as np

from model.geometry.base import DEFAULT_SETTINGS, GeometryError, WarpResult, WarpSettings
from model.geometry.camera import check_intrinsics, check_rigid
from model.geometry.depth_repair import validate_depth


def _check_image_and_depth(image: np.ndarray, depth: np.ndarray, clip: bool) -> None:
    if image.ndim != 3 + clip or image.shape[-1] != 3:
        raise GeometryError(f"image must be {'(T, H, W, 3)' if clip else '(H, W, 3)'}, got shape {image.shape}")
    if depth.shape != image.shape[:-1]:
        raise GeometryError(
            f"depth shape {depth.shape} must match the image's {image.shape[:-1]} (align depth to colour first)"
        )


def _check_out_hw(out_hw: Sequence[int]) -> tuple[int, int]:
    if len(out_hw) != 2 or int(out_hw[0]) <= 0 or int(out_hw[1]) <= 0:
        raise GeometryError(f"out_hw must be (height, width) > 0, got {out_hw}")
    return int(out_hw[0]), int(out_hw[1])


def forward_warp(
    image: np.ndarray,
    depth: np.ndarray,
    K_src: np.ndarray,
    K_dst: np.ndarray,
    T_dst_src: np.ndarray,
    out_hw: Sequence[int],
    settings: WarpSettings = DEFAULT_SETTINGS,
) -> WarpResult:
    """Render a source RGB-D frame into the target camera.

    Args:
        image: (H, W, 3) source colour, any numeric dtype (kept in the output).
        depth: (H, W) source depth in metres; 0/NaN/inf invalid, negative raises GeometryError.
        K_src, K_dst: (3, 3) intrinsics of the source and the target camera.
        T_dst_src: (4, 4) rigid transform from source optical to target optical frame.
        out_hw: (h, w) of the target image.
    Returns:
        WarpResult with image (h, w, 3), depth (h, w) float32, mask (h, w) bool, coverage (h, w) float32.
    """
    image, depth = np.asarray(image), np.asarray(depth)
    _check_image_and_depth(image, depth, clip=False)
    result = forward_warp_clip(image[None], depth[None], K_src, K_dst, T_dst_src, out_hw, settings=settings)
    return WarpResult(result.image[0], result.depth[0], result.mask[0], result.coverage[0])


def static_neighbour_depth(
    depths: np.ndarray, target_index: int, source_index: int, window: Sequence[int], tol: float
) -> np.ndarray:
    """Depth of frame `source_index` kept only where it adds static background that frame `target_index` lacks.

    With a fixed source camera the static background at a pixel is the farthest surface seen there over time, and a
    neighbouring frame adds information only where frame `target_index` sees something nearer (an object that has
    moved away since). A pixel is therefore kept if it is farther than frame `target_index`'s measurement AND within
    `tol` of the farthest depth over the frames `window`; everything else (moving objects, which would ghost, and
    surfaces the target frame already has) is dropped, as are pixels frame `target_index` did not measure.

    Args:
        depths: (T, H, W) metres, 0 invalid. window: the frame indices fused into this target, itself included.
    Returns:
        (H, W) float32, 0 where dropped.
    """
    reference = depths[target_index]
    candidate = depths[source_index]
    farthest = depths[list(window)].max(axis=0)
    keep = (reference > 0) & (candidate > reference * (1.0 + tol)) & (candidate >= farthest * (1.0 - tol))
    return np.where(keep, candidate, np.float32(0.0))


def forward_warp_clip(
    images: np.ndarray,
    depths: np.ndarray,
    K_src: np.ndarray,
    K_dst: np.ndarray,
    T_dst_src: np.ndarray,
    out_hw: Sequence[int],
    fuse_frames: int = 0,
    settings: WarpSettings = DEFAULT_SETTINGS,
    backend: str = "numba",
    reliability: np.ndarray | None = None,
    threads: int = 1,
) -> WarpResult:
    """Warp a clip frame by frame; optionally fuse static surfaces from neighbouring frames.

    Args:
        images: (T, H, W, 3) source colour; depths: (T, H, W) metres (see `forward_warp`).
        K_src, K_dst: (3, 3); T_dst_src: (4, 4) for all frames or (T, 4, 4) per frame.
        out_hw: (h, w) of the target images.
        fuse_frames: > 0 lets target frame t also receive static background (see `static_neighbour_depth`) from up
            to this many source frames nearest in time to t, where frame t's view of it was blocked by something
            that moved; the nearest surface still wins. Assumes the source camera does not move.
        backend: "numba" (CPU kernel) or "torch" (the same algorithm on torch tensors, CPU or CUDA).
        reliability: optional (T, H, W) float32 in [0, 1] per source pixel (`model.geometry.repair_depth`); target
            pixels whose interpolated reliability is below 0.5 keep their colour and their place in the mask, but
            their coverage is scaled by `model.geometry.base.UNRELIABLE_COVERAGE`, so engines that weigh the warp by
            coverage trust them less. None: every pixel is reliable.
        threads: CPU threads the numba back end splits each frame's source rows over; the result does not depend on it.
    Returns:
        WarpResult with a leading T axis on every field.
    """
    images = np.asarray(images)
    depths = np.asarray(depths)
    _check_image_and_depth(images, depths, clip=True)
    num_frames = images.shape[0]
    h, w = _check_out_hw(out_hw)
    K_src = check_intrinsics(K_src, "K_src")
    K_dst = check_intrinsics(K_dst, "K_dst")
    transforms = np.asarray(T_dst_src, dtype=np.float64)
    if transforms.shape == (4, 4):
        transforms = np.broadcast_to(transforms, (num_frames, 4, 4))
    if transforms.shape != (num_frames, 4, 4):
        raise GeometryError(f"T_dst_src must be (4, 4) or (T, 4, 4) with T={num_frames}, got {transforms.shape}")
    transforms = np.stack([check_rigid(T, f"T_dst_src[{i}]") for i, T in enumerate(transforms)])
    if fuse_frames < 0:
        raise GeometryError(f"fuse_frames must be >= 0, got {fuse_frames}")
    if num_frames == 1:
        depths = validate_depth(depths[0], "depth")[None]
    else:
        depths = np.stack([validate_depth(d, f"depth[{i}]") for i, d in enumerate(depths)])
    if reliability is None:
        reliability = np.ones(depths.shape, np.float32)
    reliability = np.asarray(reliability, dtype=np.float32)
    if reliability.shape != depths.shape:
        raise GeometryError(f"reliability {reliability.shape} must match depth {depths.shape}")

    if threads < 1:
        raise GeometryError(f"threads must be >= 1, got {threads}")
    render_frames: Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]
    if backend == "numba":
        from model.geometry.warp_numba import render_frames as render_numba

        render_frames = functools.partial(render_numba, threads=threads)
    elif backend == "torch":
        from model.geometry.warp_torch import render_frames as render_torch

        render_frames = render_torch
    else:
        raise GeometryError(f"backend must be 'numba' or 'torch', got {backend!r}")

    if fuse_frames == 0:
        colour, out_depth, coverage = render_frames(
            images, depths, reliability, K_src, K_dst, transforms, h, w, np.arange(num_frames), settings
        )
        return WarpResult(colour, out_depth, coverage > 0, coverage)
    # One source list for all targets: target t first receives its own frame, then the static background its
    # nearest neighbours in time add.
    source_frames, source_depths, target_index = [], [], []
    for t in range(num_frames):
        window = sorted(range(num_frames), key=lambda s: (abs(s - t), s))[: fuse_frames + 1]
        source_frames.append(t)
        source_depths.append(depths[t])
        target_index.append(t)
        for s in window[1:]:
            source_frames.append(s)
            source_depths.append(static_neighbour_depth(depths, t, s, window, settings.max_depth_ratio))
            target_index.append(t)
    colour, out_depth, coverage = render_frames(
        images[source_frames],
        np.stack(source_depths),
        reliability[source_frames],
        K_src,
        K_dst,
        transforms,
        h,
        w,
        np.asarray(target_index),
        settings,
    )
    return WarpResult(colour, out_depth, coverage > 0, coverage)
