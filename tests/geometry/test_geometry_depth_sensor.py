"""The depth sensor models' statistics against their parameters (model/depth_sensor.py)."""

import math

import numpy as np
import pytest

from model.depth_sensor import MonoEstimate, StereoSensor, sensor_depth

QUIET = dict(
    edge_band_px=0.0, shadow_side="none", flying_fraction=0.0, dropout_fraction=0.0, misregistration_px=(0.0, 0.0)
)


def camera(width: int = 848, height: int = 480, hfov_deg: float = 87.0) -> np.ndarray:
    focal = 0.5 * width / math.tan(math.radians(hfov_deg) / 2)
    return np.array([[focal, 0.0, (width - 1) / 2], [0.0, focal, (height - 1) / 2], [0.0, 0.0, 1.0]])


def test_datasheet_rms_error_at_two_metres():
    # D400 datasheet: <= 2 % at 2 m; the white paper's formula with subpixel 0.08 gives well under that
    for baseline, hfov in ((0.050, 87.0), (0.055, 65.0)):
        error = StereoSensor(baseline_m=baseline, hfov_deg=hfov).rms_error_m(2.0)
        assert 0.002 < error <= 0.02 * 2.0


def test_noise_grows_with_depth_squared():
    K = camera()
    sensor = StereoSensor(disparity_step_px=0.0, **QUIET)
    focal_b = K[0, 0] * sensor.baseline_m
    stds = {}
    for z in (0.5, 1.0, 2.0, 4.0):
        out = sensor.corrupt(np.full((480, 848), z, np.float32), K, np.random.default_rng(1))
        stds[z] = float(out.std())
        # independent expectation: disparity RMS 0.08 px at f*B -> z^2 * 0.08 / (f B), to first order
        assert stds[z] == pytest.approx(z**2 * sensor.subpixel_rms_px / focal_b, rel=0.08)
    assert stds[4.0] / stds[1.0] == pytest.approx(16.0, rel=0.1)


def test_noise_is_correlated_over_the_matching_window():
    K = camera()
    sensor = StereoSensor(disparity_step_px=0.0, correlation_px=2.0, **QUIET)
    out = sensor.corrupt(np.full((480, 848), 1.0, np.float32), K, np.random.default_rng(2)).astype(np.float64)
    noise = out - out.mean()
    lag1 = float((noise[:, 1:] * noise[:, :-1]).mean() / noise.var())
    # Gaussian-blurred white noise has autocorrelation exp(-lag^2 / (4 sigma^2)) at lag 1
    assert lag1 == pytest.approx(math.exp(-1 / (4 * 2.0**2)), abs=0.03)


def test_disparity_is_quantised_to_the_subpixel_step():
    K = camera()
    sensor = StereoSensor(**QUIET)
    out = sensor.corrupt(np.full((100, 848), 1.7, np.float32), K, np.random.default_rng(3))
    disparity = K[0, 0] * sensor.baseline_m / out.astype(np.float64)
    steps = disparity * 32.0
    assert np.abs(steps - np.round(steps)).max() < 1e-3


def box_scene(width: int = 848, height: int = 480) -> np.ndarray:
    depth = np.full((height, width), 2.0, np.float32)
    depth[:, width // 2 :] = 1.0  # near surface on the right half: one vertical edge at x = W/2
    return depth


@pytest.mark.parametrize("band", [1.0, 2.0, 3.0])
def test_invalid_band_width_along_depth_edges(band):
    K = camera()
    sensor = StereoSensor(
        subpixel_rms_px=0.0,
        edge_band_px=band,
        shadow_side="none",
        flying_fraction=0.0,
        dropout_fraction=0.0,
        misregistration_px=(0.0, 0.0),
    )
    out = sensor.corrupt(box_scene(), K, np.random.default_rng(0))
    invalid_per_row = (out[10:-10] == 0).sum(axis=1)
    # the edge marks one pixel on each side; a disk of radius `band` widens each by `band` pixels
    assert np.all(invalid_per_row == 2 + 2 * band)


def test_shadow_left_of_a_near_object_has_the_disparity_width():
    K = camera()
    sensor = StereoSensor(
        subpixel_rms_px=0.0, edge_band_px=0.0, flying_fraction=0.0, dropout_fraction=0.0, misregistration_px=(0.0, 0.0)
    )
    out = sensor.corrupt(box_scene(), K, np.random.default_rng(0))
    row = out[240]
    width = K[0, 0] * sensor.baseline_m * (1 / 1.0 - 1 / 2.0)  # pixels of background the right imager cannot see
    invalid = np.flatnonzero(row == 0)
    # the invalid run sits left of the edge (on the far side) and spans the disparity difference, within a pixel
    assert invalid.max() < 424 and abs(len(invalid) - width) <= 1.0
    assert np.all(row[424:] > 0)
    far_on_the_right = box_scene()[:, ::-1].copy()
    assert sensor.corrupt(far_on_the_right, K, np.random.default_rng(0)).min() > 0  # no shadow there


def test_dropout_rate_matches_the_parameter():
    K = camera()
    for fraction in (0.005, 0.02, 0.05):
        sensor = StereoSensor(
            subpixel_rms_px=0.0,
            edge_band_px=0.0,
            shadow_side="none",
            flying_fraction=0.0,
            dropout_fraction=fraction,
            misregistration_px=(0.0, 0.0),
        )
        rates = [
            (sensor.corrupt(np.full((480, 848), 1.5, np.float32), K, np.random.default_rng(s)) == 0).mean()
            for s in range(4)
        ]
        assert np.mean(rates) == pytest.approx(fraction, rel=0.25)


def test_flying_pixels_lie_between_the_surfaces_beside_the_band():
    K = camera()
    sensor = StereoSensor(
        subpixel_rms_px=0.0,
        disparity_step_px=0.0,
        shadow_side="none",
        dropout_fraction=0.0,
        flying_fraction=0.5,
        misregistration_px=(0.0, 0.0),
    )
    out = sensor.corrupt(box_scene(), K, np.random.default_rng(4))
    between = (out > 1.0 + 1e-4) & (out < 2.0 - 1e-4)
    columns = np.flatnonzero(between.any(axis=0))
    assert between.sum() > 0.2 * 2 * 480  # about half of the two one-pixel rings
    assert np.all(np.abs(columns - 423.5) <= 3)  # only right beside the band


def test_misregistration_shifts_the_edge():
    K = camera()
    base = dict(
        subpixel_rms_px=0.0,
        edge_band_px=0.0,
        shadow_side="none",
        flying_fraction=0.0,
        dropout_fraction=0.0,
        edge_min_disparity_px=1e9,
    )
    plain = StereoSensor(misregistration_px=(0.0, 0.0), **base).corrupt(box_scene(), K, np.random.default_rng(0))
    shifted = StereoSensor(misregistration_px=(2.0, 0.0), **base).corrupt(box_scene(), K, np.random.default_rng(0))
    assert np.flatnonzero(plain[240] < 1.5)[0] == 424
    assert np.flatnonzero((shifted[240] > 0) & (shifted[240] < 1.5))[0] == 426
    assert np.all(shifted[:, :2] == 0)  # uncovered by the shift: no measurement


def test_mono_estimate_is_affine_in_inverse_depth_with_the_given_spread_and_soft_edges():
    K = camera(640)
    quiet = MonoEstimate(edge_softness_px=0.0, low_frequency_rms=0.0)
    depth = np.full((120, 640), 2.0, np.float32)
    depth[:, 320:] = 1.0
    fits = []
    for seed in range(40):
        out = quiet.corrupt(depth, K, np.random.default_rng(seed)).astype(np.float64)
        scale, shift = np.polyfit(1.0 / depth.ravel(), 1.0 / out.ravel(), 1)
        assert np.abs(scale / depth + shift - 1.0 / out).max() < 1e-4  # exactly affine without the other errors
        fits.append((scale, shift))
    fits = np.array(fits)
    assert fits[:, 0].std() == pytest.approx(quiet.scale_rms, rel=0.35)
    assert fits[:, 1].std() == pytest.approx(quiet.shift_rms_inv_m, rel=0.35)
    soft = MonoEstimate(scale_rms=0.0, shift_rms_inv_m=0.0, low_frequency_rms=0.0, edge_softness_px=3.0)
    row = soft.corrupt(depth, K, np.random.default_rng(0))[60]
    between = np.flatnonzero((row > 1.02) & (row < 1.98))
    assert 4 <= len(between) <= 20 and np.all(np.abs(between - 319.5) < 12)
    assert soft.corrupt(np.where(depth > 1.5, 0.0, depth), K, np.random.default_rng(0)).min() > 0  # never invalid


def test_sensor_depth_is_seeded_and_clean_is_untouched():
    K = camera(320, 240)
    clip = np.stack([box_scene(320, 240)] * 3)
    a, b = sensor_depth(clip, K, "stereo", seed=5), sensor_depth(clip, K, "stereo", seed=5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a[0], a[1])  # every frame has its own noise
    assert sensor_depth(clip, K, "clean", seed=5) is clip
    with pytest.raises(ValueError, match="depth model"):
        sensor_depth(clip, K, "lidar", seed=0)
