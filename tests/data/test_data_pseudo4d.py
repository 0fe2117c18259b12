"""Pseudo-4D pairs: the forward-backward cycle keeps geometry, flow masks find the mover, bags feed it."""

import cv2
import numpy as np

from model.geometry import ViewpointSampler
from offline_training.metrics import psnr
from offline_training.pseudo4d import Pseudo4DConfig, bag_clips, interaction_masks, pair_from_sample, pseudo4d_pair


def textured_box_clip(T=5, H=60, W=80, step_px=3):
    """A static textured back wall at 2 m with a textured square at 1.2 m sliding right by step_px per frame."""
    rng = np.random.default_rng(0)
    # smooth texture: the cycle resamples twice, and the test measures geometry, not resampling blur
    wall = cv2.GaussianBlur(
        np.kron(rng.integers(30, 220, (H // 4, W // 4, 3)), np.ones((4, 4, 1))).astype(np.uint8), (0, 0), 2.0
    )
    patch = np.kron(rng.integers(0, 256, (4, 4, 3)), np.ones((4, 4, 1))).astype(np.uint8)
    rgb = np.repeat(wall[None], T, 0)
    depth = np.full((T, H, W), 2.0, np.float32)
    for t in range(T):
        x = 10 + t * step_px
        rgb[t, 20:36, x : x + 16] = patch
        depth[t, 20:36, x : x + 16] = 1.2
    K = np.array([[70.0, 0, (W - 1) / 2], [0, 70.0, (H - 1) / 2], [0, 0, 1]])
    return rgb, depth, K


def test_cycle_returns_source_geometry_with_disocclusion_holes():
    rgb, depth, K = textured_box_clip()
    config = Pseudo4DConfig(viewpoints=ViewpointSampler(yaw_range_deg=(12.0, 12.0), directions=("left", "right")))
    pair = pseudo4d_pair(rgb, depth, K, np.random.default_rng(1), config)
    assert pair["cond_rgb"].shape == rgb.shape and pair["cond_rgb"].dtype == np.uint8
    np.testing.assert_array_equal(pair["target_rgb"], rgb)
    covered = pair["cond_mask"] > 0
    # the square hides part of the wall from the novel view: those wall pixels come back as holes
    assert 0.5 < covered.mean() < 0.99
    assert not covered[:, 20:36].all()
    assert psnr(pair["cond_rgb"], rgb, covered) > 30
    assert (pair["cond_rgb"][~covered] == 0).all()
    assert pair["meta"]["mask_source"] == "optical_flow" and pair["meta"]["view"]["yaw_deg"] != 0


def test_flow_masks_find_the_moving_square():
    rgb, _, _ = textured_box_clip()
    masks = interaction_masks(rgb, Pseudo4DConfig(mask_dilate_px=2))
    square = np.zeros(masks.shape, bool)
    for t in range(len(rgb)):
        square[t, 20:36, 10 + 3 * t : 26 + 3 * t] = True
    hit = (masks > 0) & square
    assert hit.sum() / square.sum() > 0.6  # most of the mover
    assert masks[:, :, 60:].sum() == 0 and masks[:, 45:].sum() == 0  # nothing on the far static wall


def test_segmentation_masks_take_precedence():
    rgb, depth, K = textured_box_clip(T=2)
    seg = np.zeros(depth.shape, np.uint8)
    seg[:, 0, 0] = 7
    pair = pair_from_sample({"src_rgb": rgb, "src_depth": depth, "K_src": K, "src_mask": seg}, np.random.default_rng(0))
    assert pair["meta"]["mask_source"] == "segmentation"
    assert pair["interaction_mask"].sum() == 2 and pair["interaction_mask"].max() == 1
    np.testing.assert_array_equal(pair["target_rgb"], rgb)


def test_bag_clips_feed_pairs(tmp_path):
    from embody4d_ros.bag_io import write_rgbd_bag

    rgb, depth, K = textured_box_clip(T=6)
    write_rgbd_bag(tmp_path / "bag", rgb, depth, K, [1_000_000_000 + 33_000_000 * i for i in range(6)])
    clips = list(bag_clips(str(tmp_path / "bag"), num_frames=3))
    assert len(clips) == 2
    np.testing.assert_array_equal(clips[1]["rgb"], rgb[3:])
    np.testing.assert_allclose(clips[0]["depth"], depth[:3], atol=1e-3)  # 16UC1 millimetres
    pair = pseudo4d_pair(clips[0]["rgb"], clips[0]["depth"], clips[0]["K"], np.random.default_rng(0))
    assert pair["cond_mask"].any()
