"""Clip warp with temporal fusion: background uncovered at other times fills the target, moving objects do not ghost."""

import numpy as np

from model.geometry import forward_warp_clip

H, W, FRAMES = 60, 80, 5
K = np.array([[70.0, 0.0, 39.5], [0.0, 70.0, 29.5], [0.0, 0.0, 1.0]])
BLUE, RED = (0, 0, 255), (255, 0, 0)


def moving_block_clip() -> tuple[np.ndarray, np.ndarray]:
    """A red block at 1 m sliding right by 6 px per frame in front of a blue wall at 3 m; the camera is static."""
    images = np.zeros((FRAMES, H, W, 3), np.uint8)
    images[...] = BLUE
    depths = np.full((FRAMES, H, W), 3.0, np.float32)
    for t in range(FRAMES):
        left = 20 + 6 * t
        images[t, 15:45, left : left + 16] = RED
        depths[t, 15:45, left : left + 16] = 1.0
    return images, depths


def test_fusion_fills_disocclusions_with_static_background_only():
    images, depths = moving_block_clip()
    T = np.eye(4)
    T[0, 3] = 0.15  # camera moved 15 cm left: the block shifts 10.5 px right, the wall 3.5 px, opening a gap
    alone = forward_warp_clip(images, depths, K, K, T, (H, W))
    fused = forward_warp_clip(images, depths, K, K, T, (H, W), fuse_frames=2)
    middle = FRAMES // 2
    gained = fused.mask[middle] & ~alone.mask[middle]
    assert gained.sum() > 100  # the gap beside the block is filled from frames where the block was elsewhere
    assert (fused.image[middle][gained] == BLUE).all()  # ... with wall, never with the block seen at other times
    np.testing.assert_allclose(fused.depth[middle][gained], 3.0, rtol=1e-5)
    # What the frame saw itself is unchanged, including its own block.
    kept = alone.mask[middle]
    np.testing.assert_array_equal(fused.image[middle][kept], alone.image[middle][kept])
    np.testing.assert_array_equal(fused.depth[middle][kept], alone.depth[middle][kept])
    red = (fused.image[middle] == RED).all(-1)
    assert red.sum() == (alone.image[middle] == RED).all(-1).sum()


def test_fusion_of_a_static_clip_changes_nothing():
    images, depths = moving_block_clip()
    images[:] = images[0]
    depths[:] = depths[0]
    T = np.eye(4)
    T[0, 3] = 0.15
    alone = forward_warp_clip(images, depths, K, K, T, (H, W))
    fused = forward_warp_clip(images, depths, K, K, T, (H, W), fuse_frames=2)
    np.testing.assert_array_equal(fused.mask, alone.mask)
    np.testing.assert_array_equal(fused.image, alone.image)
