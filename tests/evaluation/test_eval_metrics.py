"""Metrics on known cases: identical images, known Gaussian noise, regions, flicker."""

from __future__ import annotations

import math

import numpy as np
import pytest

from offline_training.metrics import flicker, load_lpips, psnr, ssim


def clip(seed: int = 0, shape=(3, 32, 40, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(40, 216, shape, dtype=np.uint8)


def test_identical_images():
    a = clip()
    assert psnr(a, a) == math.inf
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-9)
    assert flicker(a, a) == 0.0


def test_known_gaussian_noise_gives_known_psnr():
    truth = np.full((4, 64, 64, 3), 128, np.uint8)
    sigma = 8.0
    noise = np.random.default_rng(1).normal(0, sigma, truth.shape)
    pred = np.clip(np.round(truth + noise), 0, 255).astype(np.uint8)
    # rounding adds uniform error of variance 1/12
    expected = 10 * math.log10(255**2 / (sigma**2 + 1 / 12))
    assert psnr(pred, truth) == pytest.approx(expected, abs=0.05)
    assert ssim(pred, truth) < 0.9


def test_constant_offset_psnr_exact():
    truth = clip()
    pred = truth + np.uint8(10)
    assert psnr(pred, truth) == pytest.approx(10 * math.log10(255**2 / 100))


def test_region_restricts_the_error():
    truth = clip()
    pred = truth.copy()
    region = np.zeros(truth.shape[:3], bool)
    region[:, :, :20] = True
    pred[:, :, 20:] = 0  # wrong only outside the region
    assert psnr(pred, truth, region) == math.inf
    assert psnr(pred, truth, ~region) < 15
    assert math.isnan(psnr(pred, truth, np.zeros_like(region)))
    assert ssim(pred, truth, region) > ssim(pred, truth, ~region)


def test_flicker_counts_change_not_static_error():
    truth = clip()
    static_error = np.repeat(clip(2)[:1], 3, 0)  # wrong but steady
    steady_truth = np.repeat(truth[:1], 3, 0)
    assert flicker(static_error, steady_truth) == 0.0
    popping = steady_truth.copy()
    popping[1] = 255 - popping[1]
    assert flicker(popping, steady_truth) > 10


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="one shape"):
        psnr(clip(), clip()[:, :16])


def test_lpips_is_skipped_with_a_note_when_unavailable(tmp_path):
    fn, note = load_lpips(tmp_path)
    assert (fn is None) == bool(note)
    if fn is None:
        assert "LPIPS skipped" in note


def test_psnr_known_values():
    reference = np.zeros((4, 4, 3), np.uint8)
    prediction = reference.copy()
    assert psnr(prediction, reference) == float("inf")
    prediction[...] = 255
    assert psnr(prediction, reference) == pytest.approx(0.0)
    prediction[...] = 0
    prediction[0, 0] = 255  # MSE over 16 pixels: 255^2 / 16, so PSNR = 10 log10(16)
    assert psnr(prediction, reference) == pytest.approx(10 * math.log10(16))
    mask = np.zeros((4, 4), bool)
    mask[1:, 1:] = True  # the error lies outside the mask
    assert psnr(prediction, reference, mask) == float("inf")
