"""Scale alignment of monocular depth (model/depth_align.py) against the mono sensor model's known scale and shift."""

import numpy as np
import pytest

from model.depth_align import (
    DepthAlignmentError,
    InverseDepthAffine,
    StreamAlignment,
    fit_inverse_depth_affine,
    interior_anchors,
)
from model.depth_sensor import MonoEstimate

H, W = 240, 320
K = np.array([[300.0, 0.0, 159.5], [0.0, 300.0, 119.5], [0.0, 0.0, 1.0]])


def table_scene() -> np.ndarray:
    """A floor/table plane receding from 0.5 m (bottom row) to 3 m (top row) and a box on it at 1.2 m."""
    rows = np.linspace(1 / 3.0, 1 / 0.5, H)[:, None]  # inverse depth linear in the row, as for a plane
    depth = np.broadcast_to(1.0 / rows, (H, W)).astype(np.float32).copy()
    depth[100:160, 120:200] = 1.2
    return depth


def robot_patch() -> np.ndarray:
    """Anchors of a robot seen at 1.1-1.3 m (a narrow range of depths), 0 elsewhere."""
    anchors = np.zeros((H, W), np.float32)
    anchors[60:180, 40:100] = np.linspace(1.1, 1.3, 60)[None, :]
    return anchors


def true_inverse_affine(a: float, b: float) -> tuple[float, float]:
    """MonoEstimate makes 1/z_est = a / z + b, so 1/z = (1/a) / z_est - b / a."""
    return 1.0 / a, -b / a


@pytest.mark.parametrize("seed", range(5))
def test_recovers_the_mono_models_scale_and_shift_from_anchors_over_a_wide_range(seed):
    rng = np.random.default_rng(seed)
    depth = table_scene()
    a, b = 1.0 + 0.1 * rng.standard_normal(), 0.05 * rng.standard_normal()  # twice the model's spread
    estimate = MonoEstimate().corrupt(depth, K, rng, affine=(a, b))  # soft edges and 2 % low-frequency error too
    # sparse anchors on the table plane (a known plane, or a few valid stereo pixels): 2 % of the pixels
    anchors = np.where(rng.random((H, W)) < 0.02, depth, 0.0)
    fit = fit_inverse_depth_affine(estimate, anchors)
    scale, shift = true_inverse_affine(a, b)
    assert fit.scale == pytest.approx(scale, rel=0.03)
    assert fit.shift_inv_m == pytest.approx(shift, abs=0.02)
    before = np.median(np.abs(estimate / depth - 1))
    after = np.median(np.abs(fit.apply(estimate) / depth - 1))
    assert after < 0.03 and after < before


def test_exact_affine_is_recovered_exactly():
    depth = table_scene()
    quiet = MonoEstimate(edge_softness_px=0.0, low_frequency_rms=0.0)
    estimate = quiet.corrupt(depth, K, np.random.default_rng(0), affine=(0.8, 0.1))
    fit = fit_inverse_depth_affine(estimate, depth)
    assert (fit.scale, fit.shift_inv_m) == pytest.approx(true_inverse_affine(0.8, 0.1), abs=1e-4)
    np.testing.assert_allclose(fit.apply(estimate), depth, rtol=1e-4)


def test_a_narrow_anchor_range_fits_the_scale_only():
    rng = np.random.default_rng(3)
    depth = table_scene()
    depth[60:180, 40:100] = robot_patch()[60:180, 40:100]
    estimate = MonoEstimate().corrupt(depth, K, rng, affine=(1.12, 0.0))
    fit = fit_inverse_depth_affine(estimate, robot_patch())
    assert fit.shift_inv_m == 0.0
    assert fit.scale == pytest.approx(1 / 1.12, rel=0.03)
    before = np.median(np.abs(estimate / depth - 1))
    after = np.median(np.abs(fit.apply(estimate) / depth - 1))
    assert before > 0.09 and after < 0.035


def test_anchors_occluded_by_something_nearer_are_left_out():
    depth = table_scene()
    quiet = MonoEstimate(edge_softness_px=0.0, low_frequency_rms=0.0)
    estimate = quiet.corrupt(depth, K, np.random.default_rng(0), affine=(0.9, 0.03))
    anchors = depth.copy()
    # a quarter of the anchor pixels see a held object 0.4 m in front of what the anchors say
    estimate[:60] = quiet.corrupt(np.maximum(depth[:60] - 0.4, 0.2), K, np.random.default_rng(0), affine=(0.9, 0.03))
    fit = fit_inverse_depth_affine(estimate, anchors)
    assert (fit.scale, fit.shift_inv_m) == pytest.approx(true_inverse_affine(0.9, 0.03), abs=2e-3)
    assert fit.anchors < 0.8 * H * W


def test_too_few_anchors_and_invalid_pixels():
    depth = table_scene()
    anchors = np.zeros_like(depth)
    anchors[0, :10] = depth[0, :10]
    with pytest.raises(DepthAlignmentError, match="10 usable anchor pixels"):
        fit_inverse_depth_affine(depth, anchors)
    estimate = depth.copy()
    estimate[:5] = 0.0
    estimate[5, :] = np.nan
    out = InverseDepthAffine(1.1, -0.6).apply(estimate)  # 1.1 / 3 m - 0.6 < 0: behind the camera
    assert np.all(out[:6] == 0)
    far = 1.1 / depth - 0.6 <= 1e-3
    assert np.all(out[6:][far[6:]] == 0) and np.all(out[6:][~far[6:]] > 0)


def test_invalid_pixels_are_not_anchors_and_many_anchors_are_thinned():
    depth = table_scene()
    estimate = MonoEstimate(edge_softness_px=0.0, low_frequency_rms=0.0).corrupt(
        depth, K, np.random.default_rng(0), affine=(0.9, 0.03)
    )
    broken, anchors = estimate.copy(), depth.copy()
    broken[:20] = np.inf
    broken[20:40] = np.nan
    anchors[40:60] = np.nan
    anchors[60:80] = np.inf
    fit = fit_inverse_depth_affine(broken, anchors, max_anchors=1000)
    assert fit.anchors <= 1000
    assert (fit.scale, fit.shift_inv_m) == pytest.approx(true_inverse_affine(0.9, 0.03), abs=1e-4)


def test_interior_anchors_drop_the_silhouette():
    anchors = interior_anchors(robot_patch(), margin_px=2)
    assert np.array_equal(anchors > 0, np.pad(np.ones((116, 56), bool), ((62, H - 178), (42, W - 98))))


def test_stream_alignment_smooths_and_keeps_the_last_fit():
    depth = table_scene()
    quiet = MonoEstimate(edge_softness_px=0.0, low_frequency_rms=0.0)
    stream = StreamAlignment(smoothing=0.5)
    first = quiet.corrupt(depth, K, np.random.default_rng(0), affine=(1.0, 0.0))
    assert stream.apply(first) is None and not stream.update(first, None)
    assert stream.update(first, depth)
    np.testing.assert_allclose(stream.apply(first), depth, rtol=1e-4)
    second = quiet.corrupt(depth, K, np.random.default_rng(0), affine=(0.8, 0.0))
    assert stream.update(second, depth)
    assert stream.fit is not None and stream.fit.scale == pytest.approx(0.5 * 1.0 + 0.5 / 0.8, rel=1e-3)
    assert not stream.update(second, np.zeros_like(depth))  # no anchors: the running fit stays
    assert stream.fit.scale == pytest.approx(0.5 * 1.0 + 0.5 / 0.8, rel=1e-3)
    with pytest.raises(ValueError, match="smoothing"):
        StreamAlignment(smoothing=1.0)
