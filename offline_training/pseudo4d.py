"""Pseudo-4D pairs (the paper's stage-2 data) from any monocular RGB-D clip, real rosbags included.

The forward-backward cycle: each frame is warped into a sampled novel view and the warp is warped back into the
source view. What comes back is the source clip degraded exactly the way a real novel view is (disocclusion holes,
resampling blur, stretched edges), at the source pose, so the untouched source clip is its ground truth. Where no
segmentation exists, interaction masks (moving robot and objects) come from dense optical flow (OpenCV DIS).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np

from model.geometry import ViewpointSampler, forward_warp_clip, invert_transform, target_transform


@dataclasses.dataclass
class Pseudo4DConfig:
    """Novel-view ranges of the cycle and the optical-flow interaction mask.

    Attributes:
        viewpoints: the novel-view sampler (yaw/pitch about the centre-depth pivot, or a forward/backward move).
        flow_threshold_px: a pixel moves when its flow to a neighbouring frame exceeds this many pixels.
        mask_dilate_px: moving regions grow by this much so that thin parts and edges are covered.
        min_region_px: moving blobs smaller than this are noise and dropped.
    """

    viewpoints: ViewpointSampler = dataclasses.field(default_factory=ViewpointSampler)
    flow_threshold_px: float = 1.0
    mask_dilate_px: int = 5
    min_region_px: int = 30


def interaction_masks(rgb: np.ndarray, config: Pseudo4DConfig | None = None) -> np.ndarray:
    """Moving-region masks of a clip from DIS optical flow: (T, H, W, 3) uint8 -> (T, H, W) uint8 in {0, 1}.

    Frame t moves where its flow to frame t-1 or t+1 exceeds the threshold. With a static camera that is the robot
    and what it pushes; a moving camera makes everything move, so use it on fixed-camera clips.
    """
    config = config or Pseudo4DConfig()
    rgb = np.asarray(rgb)
    if rgb.ndim != 4 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be (T, H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in rgb]
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    moving = np.zeros(rgb.shape[:3], bool)
    for t in range(len(rgb) - 1):
        flow = dis.calc(grey[t], grey[t + 1], None)
        fast = np.linalg.norm(flow, axis=2) > config.flow_threshold_px
        moving[t] |= fast
        # the same motion seen from frame t+1: pixels that arrive there
        back = dis.calc(grey[t + 1], grey[t], None)
        moving[t + 1] |= np.linalg.norm(back, axis=2) > config.flow_threshold_px
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * config.mask_dilate_px + 1,) * 2)
    masks = np.zeros(rgb.shape[:3], np.uint8)
    for t, m in enumerate(moving.astype(np.uint8)):
        count, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
        keep = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= config.min_region_px)
        keep = keep[keep > 0]
        masks[t] = cv2.dilate(np.isin(labels, keep).astype(np.uint8), kernel)
    return masks


def pseudo4d_pair(
    rgb: np.ndarray,
    depth: np.ndarray,
    K: np.ndarray,
    rng: np.random.Generator,
    config: Pseudo4DConfig | None = None,
    masks: np.ndarray | None = None,
) -> dict[str, Any]:
    """One stage-2 training pair from a monocular RGB-D clip with a fixed camera.

    Args:
        rgb: (T, H, W, 3) uint8 clip; depth: (T, H, W) float32 metres (0/NaN/inf invalid); K: (3, 3).
        rng: draws the novel view.
        masks: (T, H, W) robot/object segmentation when known; otherwise flow-based interaction masks are used.
    Returns:
        dict with ``cond_rgb`` (T, H, W, 3) uint8 the warped-back clip (holes 0), ``cond_mask`` (T, H, W) uint8
        (1 where the cycle brought a surface back), ``target_rgb`` (T, H, W, 3) the original clip,
        ``interaction_mask`` (T, H, W) uint8, ``depth`` (T, H, W), ``K`` (3, 3), ``T_novel_src`` (4, 4) and
        ``meta`` (the sampled view, the mask source, covered fraction).
    """
    config = config or Pseudo4DConfig()
    rgb, depth = np.asarray(rgb), np.asarray(depth, dtype=np.float32)
    if rgb.ndim != 4 or depth.shape != rgb.shape[:3]:
        raise ValueError(f"need rgb (T, H, W, 3) and depth (T, H, W) of the same size, got {rgb.shape}, {depth.shape}")
    height, width = rgb.shape[1:3]
    view = config.viewpoints.sample(rng)
    T_novel_src = target_transform(view, depth[0], K)
    novel = forward_warp_clip(rgb, depth, K, K, T_novel_src, (height, width))
    # frames whose novel view came out empty cannot be warped back; they stay all holes
    back_depth = np.where(novel.mask, novel.depth, np.float32(0.0))
    full = np.flatnonzero(back_depth.reshape(len(rgb), -1).any(axis=1))
    cond_rgb = np.zeros_like(rgb)
    cond_mask = np.zeros(rgb.shape[:3], bool)
    if len(full):
        back = forward_warp_clip(
            novel.image[full], back_depth[full], K, K, invert_transform(T_novel_src), (height, width)
        )
        cond_mask[full] = back.mask
        cond_rgb[full] = np.where(back.mask[..., None], back.image, 0)
    if masks is None:
        interaction, mask_source = interaction_masks(rgb, config), "optical_flow"
    else:
        interaction, mask_source = (np.asarray(masks) > 0).astype(np.uint8), "segmentation"
    meta = {"view": dataclasses.asdict(view), "mask_source": mask_source, "covered_fraction": float(cond_mask.mean())}
    return dict(
        cond_rgb=cond_rgb,
        cond_mask=cond_mask.astype(np.uint8),
        target_rgb=rgb,
        interaction_mask=interaction,
        depth=depth,
        K=np.asarray(K, float),
        T_novel_src=T_novel_src,
        meta=meta,
    )


def pair_from_sample(
    sample: dict[str, Any], rng: np.random.Generator, config: Pseudo4DConfig | None = None
) -> dict[str, Any]:
    """Stage-2 pair from the source view of a two-view dataset sample (its robot-and-object masks serve as the
    interaction masks), so stage 2 can run on synthetic data as well as on bags."""
    return pseudo4d_pair(sample["src_rgb"], sample["src_depth"], sample["K_src"], rng, config, masks=sample["src_mask"])


def bag_clips(path: str, num_frames: int = 49, stride: int = 1, **topics: str) -> Iterator[dict[str, np.ndarray]]:
    """Consecutive RGB-D clips of ``num_frames`` frames from a rosbag2 (realsense topic names unless given).

    Yields dicts with ``rgb`` (T, H, W, 3) uint8, ``depth`` (T, H, W) float32 m, ``K`` (3, 3) ready for
    :func:`pseudo4d_pair`. ``stride`` keeps every stride-th frame; ``topics`` override CameraTopics fields.
    """
    import embody4d_ros.bag_io as bag_io

    camera = dataclasses.replace(bag_io.REALSENSE, **topics) if topics else bag_io.REALSENSE
    frames, depths = [], []
    for i, frame in enumerate(bag_io.read_rgbd_frames(path, camera)):
        if i % stride:
            continue
        assert frame.depth is not None  # read_rgbd_frames requires depth by default
        frames.append(frame)
        depths.append(frame.depth)
        if len(frames) == num_frames:
            yield {"rgb": np.stack([f.rgb for f in frames]), "depth": np.stack(depths), "K": frames[0].K}
            frames, depths = [], []
