"""The warp engine fills disocclusions from the background side when the request carries the warped depth."""

import numpy as np
import pytest

from model.engines import EngineError, GenerationRequest, create_engine


def _request(with_depth: bool) -> GenerationRequest:
    # A near red surface on the left, a far blue one on the right, and a disoccluded band between them.
    h, w = 48, 64
    warped = np.zeros((1, h, w, 3), np.uint8)
    depth = np.zeros((1, h, w), np.float32)
    warped[0, :, :24] = (255, 0, 0)
    depth[0, :, :24] = 1.0
    warped[0, :, 40:] = (0, 0, 255)
    depth[0, :, 40:] = 3.0
    mask = depth > 0
    return GenerationRequest(
        source_rgb=warped.copy(),
        warped_rgb=warped,
        warp_mask=mask,
        coverage=mask.astype(np.float32),
        warped_depth=depth if with_depth else None,
    )


def test_fill_prefers_the_far_surface_given_depth():
    out = create_engine("warp").generate(_request(with_depth=True))
    band = out[0, :, 24:40].reshape(-1, 3).astype(float)
    assert band[:, 2].mean() > 3 * band[:, 0].mean(), "the hole should take the background (blue), not the robot side"


def test_fill_without_depth_still_fills_every_hole():
    out = create_engine("warp").generate(_request(with_depth=False))
    assert out.shape == (1, 48, 64, 3) and out.dtype == np.uint8
    assert (out[0, :, 24:40].sum(axis=-1) > 0).all()


def test_warped_depth_shape_is_checked():
    request = _request(with_depth=True)
    with pytest.raises(EngineError, match="warped_depth"):
        GenerationRequest(
            source_rgb=request.source_rgb,
            warped_rgb=request.warped_rgb,
            warp_mask=request.warp_mask,
            coverage=request.coverage,
            warped_depth=request.warped_depth[:, :10],
        )
