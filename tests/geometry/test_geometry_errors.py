"""Bad input to the warp gives a GeometryError that names the problem, never a crash deep inside or garbage."""

import numpy as np
import pytest

from model.geometry import GeometryError, forward_warp, forward_warp_clip

K = np.array([[100.0, 0.0, 31.5], [0.0, 100.0, 23.5], [0.0, 0.0, 1.0]])
IMAGE = np.full((48, 64, 3), 200, np.uint8)
DEPTH = np.full((48, 64), 2.0, np.float32)


def warp(image=IMAGE, depth=DEPTH, K_src=K, K_dst=K, T=None, out_hw=(48, 64)):
    return forward_warp(image, depth, K_src, K_dst, np.eye(4) if T is None else T, out_hw)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"depth": DEPTH[:-1]}, "must match"),
        ({"image": IMAGE[..., :2]}, r"\(H, W, 3\)"),
        ({"depth": np.zeros_like(DEPTH)}, "no valid pixel"),
        ({"depth": np.full_like(DEPTH, np.nan)}, "no valid pixel"),
        (
            {"depth": np.where(np.arange(64) < 3, -1.0, 2.0).astype(np.float32) * np.ones((48, 1), np.float32)},
            "negative",
        ),
        ({"K_src": np.full((3, 3), np.nan)}, "non-finite"),
        ({"K_dst": np.diag([0.0, 100.0, 1.0])}, "singular"),
        ({"T": np.diag([1.0, 1.0, 2.0, 1.0])}, "not rigid"),
        ({"T": np.eye(3)}, r"\(4, 4\)"),
        ({"out_hw": (0, 64)}, "out_hw"),
    ],
    ids=[
        "shape-mismatch",
        "not-rgb",
        "all-zero",
        "all-nan",
        "negative",
        "nan-K",
        "singular-K",
        "scaled-T",
        "3x3-T",
        "empty-out",
    ],
)
def test_bad_input_raises_geometry_error(kwargs, message):
    with pytest.raises(GeometryError, match=message):
        warp(**kwargs)


def test_nan_inf_and_zero_depth_are_holes_not_errors():
    depth = DEPTH.copy()
    depth[10, 10], depth[20, 20], depth[30, 30] = np.nan, np.inf, 0.0
    result = warp(depth=depth)
    assert not result.mask[10, 10] and not result.mask[20, 20] and not result.mask[30, 30]
    assert result.mask.sum() == depth.size - 3
    assert np.all(np.isfinite(result.depth))


def test_clip_transform_count_must_match_frames():
    with pytest.raises(GeometryError, match="T=2"):
        forward_warp_clip(np.stack([IMAGE, IMAGE]), np.stack([DEPTH, DEPTH]), K, K, np.stack([np.eye(4)] * 3), (48, 64))


def test_unknown_backend_is_named():
    with pytest.raises(GeometryError, match="backend"):
        forward_warp_clip(IMAGE[None], DEPTH[None], K, K, np.eye(4), (48, 64), backend="opencl")
