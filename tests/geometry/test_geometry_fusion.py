"""Temporal fusion keeps only static background from neighbouring frames (model.geometry.static_neighbour_depth)."""

import numpy as np

from model.geometry import forward_warp_clip, static_neighbour_depth

K = np.array([[70.0, 0.0, 39.5], [0.0, 70.0, 29.5], [0.0, 0.0, 1.0]])


def test_only_the_farthest_surface_seen_over_time_is_borrowed():
    # one pixel column over three frames: frame 0 sees a near object (1 m), frame 1 a mid object that moved in (2 m),
    # frame 2 the wall (3 m)
    depths = np.array([[[1.0]], [[2.0]], [[3.0]]], np.float32)
    window = [0, 1, 2]
    assert static_neighbour_depth(depths, 0, 1, window, tol=0.05)[0, 0] == 0.0  # a moving object: would ghost
    assert static_neighbour_depth(depths, 0, 2, window, tol=0.05)[0, 0] == 3.0  # the wall behind: borrowed
    assert static_neighbour_depth(depths, 2, 0, window, tol=0.05)[0, 0] == 0.0  # nearer than the target's own view


def test_fused_clip_shows_no_ghost_of_an_object_that_passed_in_front_of_the_wall():
    H, W = 60, 80
    images = np.zeros((3, H, W, 3), np.uint8)
    images[...] = (0, 0, 255)  # blue wall at 3 m
    depths = np.full((3, H, W), 3.0, np.float32)
    images[0, 20:40, 30:50], depths[0, 20:40, 30:50] = (255, 0, 0), 1.0  # red box in frame 0 only
    images[1, 20:40, 30:50], depths[1, 20:40, 30:50] = (0, 255, 0), 2.0  # green box in frame 1 only
    T = np.eye(4)
    T[0, 3] = 0.1
    fused = forward_warp_clip(images, depths, K, K, T, (H, W), fuse_frames=2)
    green = (fused.image[0] == (0, 255, 0)).all(-1)
    assert not green.any()  # frame 0 never shows frame 1's box
    alone = forward_warp_clip(images, depths, K, K, T, (H, W))
    gained = fused.mask[0] & ~alone.mask[0]
    assert gained.sum() > 20 and (fused.image[0][gained] == (0, 0, 255)).all()  # the disocclusion gets the wall
