"""Two-view clips from the simulator: schema, and geometric self-consistency of depth, intrinsics and poses."""

import cv2
import numpy as np
import pytest

from model.geometry import forward_warp
from offline_training.metrics import psnr
from offline_training.sim import LIBRARY, render_two_view_clip
from offline_training.sim.camera import anchor_track, intrinsics, look_at, project, unproject

H, W = 240, 320


@pytest.fixture(scope="module")
def sample():
    return render_two_view_clip("panda", num_frames=5, height=H, width=W, seed=3)


def warp_psnr(sample, t, K_src=None):
    """PSNR of the source warped into the target (model.geometry.forward_warp) against the target, on covered pixels
    whose warped depth agrees with the target's and that are not on a depth edge (anti-aliased silhouettes blend
    foreground and background differently in each view)."""
    K_src = sample["K_src"] if K_src is None else K_src
    warp = forward_warp(
        sample["src_rgb"][t], sample["src_depth"][t], K_src, sample["K_tgt"], sample["T_tgt_src"][t], (H, W)
    )
    tz = sample["tgt_depth"][t]
    edge = (cv2.dilate(tz, np.ones((5, 5))) - cv2.erode(tz, np.ones((5, 5)))) > 0.03 * tz
    covered = warp.mask & (tz > 0) & (np.abs(warp.depth - tz) < 0.01 * tz) & ~edge
    assert covered.mean() > 0.3, "too few covered pixels to judge"
    return psnr(warp.image, sample["tgt_rgb"][t], covered)


def test_schema(sample):
    T = 5
    for view in ("src", "tgt"):
        assert sample[f"{view}_rgb"].shape == (T, H, W, 3) and sample[f"{view}_rgb"].dtype == np.uint8
        assert sample[f"{view}_depth"].shape == (T, H, W) and sample[f"{view}_depth"].dtype == np.float32
        assert sample[f"{view}_mask"].shape == (T, H, W) and sample[f"{view}_mask"].dtype == np.uint8
        assert set(np.unique(sample[f"{view}_mask"])) <= {0, 1}
        assert sample[f"{view}_mask"].any(), "robot or objects should be visible"
        # closed room: every pixel sees a real surface at a plausible distance
        assert (sample[f"{view}_depth"] > 0.05).all() and (sample[f"{view}_depth"] < 10).all()
    assert sample["K_src"].shape == (3, 3) and sample["T_tgt_src"].shape == (T, 4, 4)
    R = sample["T_tgt_src"][0, :3, :3]
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-9)
    assert isinstance(sample["caption"], str) and "Panda" in sample["caption"]
    assert sample["meta"]["robot"] == "panda" and sample["meta"]["seed"] == 3


def test_robot_moves(sample):
    assert np.abs(sample["src_rgb"][-1].astype(int) - sample["src_rgb"][0]).mean() > 0.1
    assert (sample["src_mask"][-1] != sample["src_mask"][0]).any()


def test_warp_source_into_target_reproduces_target(sample):
    for t in (0, 4):
        assert warp_psnr(sample, t) >= 30.0


def test_warp_check_detects_a_one_pixel_intrinsics_error(sample):
    K = sample["K_src"].copy()
    K[0, 2] += 1.0
    assert warp_psnr(sample, 0, K) < warp_psnr(sample, 0) - 2.0


def test_intrinsics_and_look_at_conventions():
    K = intrinsics(90.0, 240, 320)
    assert K[1, 1] == pytest.approx(120.0) and K[0, 2] == pytest.approx(159.5) and K[1, 2] == pytest.approx(119.5)
    T = look_at(np.array([0.0, -2.0, 1.0]), np.array([0.0, 0.0, 1.0]))
    # optical frame: z towards the target, y down (world -z), x right (world +x when looking along +y)
    np.testing.assert_allclose(T[:3, 2], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(T[:3, 1], [0, 0, -1], atol=1e-12)
    np.testing.assert_allclose(T[:3, 0], [1, 0, 0], atol=1e-12)


def test_anchor_tracking_projects_the_lifted_centre():
    K = intrinsics(60.0, 60, 80)
    mask = np.zeros((2, 60, 80), np.uint8)
    mask[:, 20:31, 40:51] = 1  # centroid (45, 25)
    depth = np.full((2, 60, 80), 2.0, np.float32)
    T = np.eye(4)
    T[0, 3] = 0.5  # target sees points shifted by +0.5 m in x
    anchor, uv = anchor_track(mask, depth, K, T, K)
    expected = unproject(np.array([[45.0, 25.0]]), [2.0], K)[0] + [0.5, 0, 0]
    np.testing.assert_allclose(anchor, expected, atol=1e-9)
    np.testing.assert_allclose(uv, project(expected[None], K)[0], atol=1e-9)
    with pytest.raises(ValueError, match="not visible"):
        anchor_track(np.zeros_like(mask), depth, K, T, K)


def test_same_seed_same_clip_and_different_seed_differs():
    a, b, c = (render_two_view_clip("panda", num_frames=2, height=48, width=64, seed=s) for s in (7, 7, 8))
    for key in ("src_rgb", "tgt_rgb", "src_depth", "src_mask", "T_tgt_src"):
        np.testing.assert_array_equal(a[key], b[key])
    assert a["caption"] == b["caption"]
    assert not np.array_equal(a["src_rgb"], c["src_rgb"])


@pytest.mark.slow
@pytest.mark.parametrize("robot", sorted(LIBRARY))
def test_every_robot_is_visible_in_both_views(robot):
    sample = render_two_view_clip(robot, num_frames=2, height=60, width=80, seed=0)
    for view in ("src", "tgt"):
        robot_mask = sample[f"{view}_robot_mask"]
        assert robot_mask.mean() > 0.005, f"{robot} hardly visible in the {view} view"
        # the robot's mask is part of the robot-and-object mask
        assert (sample[f"{view}_mask"][robot_mask > 0] == 1).all()
