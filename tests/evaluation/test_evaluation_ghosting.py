"""The ghosting measure of `embody4d eval`: foreground colour on background pixels."""

import numpy as np

from offline_training.metrics import ghosting


def test_ghosting_counts_foreground_colour_shown_on_background():
    truth = np.full((1, 10, 10, 3), 50, np.uint8)  # background, 2 m away everywhere
    truth_depth = np.full((1, 10, 10), 2.0, np.float32)
    warped = truth.copy()
    warped_depth = truth_depth.copy()
    warped[0, :, :2] = 220  # the warp smeared a near, bright foreground over two columns of background
    warped_depth[0, :, :2] = 1.0
    assert ghosting(warped, truth, warped, warped_depth, truth_depth) == 20.0  # 20 of 100 pixels
    assert ghosting(truth, truth, warped, warped_depth, truth_depth) == 0.0  # repaired with the background
    holes = warped.copy()
    holes[0, :, :2] = 0  # left black: wrong, but not a ghost (closer to the truth than to the foreground)
    assert ghosting(holes, truth, warped, warped_depth, truth_depth) == 0.0
    farther = warped_depth.copy()
    farther[0, :, :2] = 1.95  # within 5 % of the truth: the same surface, a colour error but no ghost
    assert ghosting(warped, truth, warped, farther, truth_depth) == 0.0
