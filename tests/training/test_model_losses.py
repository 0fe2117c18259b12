"""offline_training.training.losses: the differentiable SSIM follows the evaluator's, and the hole loss composes as
the engines do."""

import numpy as np
import pytest
import torch

from offline_training.metrics import ssim_map as eval_ssim_map
from offline_training.training.losses import hole_image_loss, ssim_map

torch.set_num_threads(1)


def _images(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = (rng.random((2, 40, 56, 3)) * 255).astype(np.uint8)
    truth = np.clip(truth.astype(np.float32) * 0.3 + np.linspace(0, 170, 56)[None, None, :, None], 0, 255).astype(
        np.uint8
    )
    noisy = np.clip(truth + rng.normal(0, 20, truth.shape), 0, 255).astype(np.uint8)
    return noisy, truth


def _tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x).permute(0, 3, 1, 2).float() / 127.5 - 1


@pytest.mark.parametrize("seed", [0, 1])
def test_ssim_matches_the_evaluator_away_from_the_border(seed):
    pred, truth = _images(seed)
    expected = eval_ssim_map(pred, truth)[:, 5:-5, 5:-5]
    got = ssim_map(_tensor(pred), _tensor(truth))[:, 5:-5, 5:-5].numpy()
    assert 0.2 < expected.mean() < 0.9  # a case where SSIM is informative
    np.testing.assert_allclose(got, expected, atol=2e-3)


def test_ssim_of_identical_images_is_one():
    _, truth = _images(0)
    assert torch.allclose(ssim_map(_tensor(truth), _tensor(truth)), torch.ones(2, 40, 56), atol=1e-5)


def test_hole_loss_counts_only_the_generated_pixels():
    _, truth = _images(0)
    truth_video = _tensor(truth).transpose(0, 1)[None]  # (1, 3, T, H, W)
    keep = torch.zeros(1, 1, *truth_video.shape[2:], dtype=torch.bool)
    keep[..., :, :28] = True
    generated = truth_video.clone().requires_grad_(True)
    wrong_kept = (
        -truth_video
    )  # kept pixels are what the engines copy; wrong here on purpose, and ignored by the gradient
    exact = hole_image_loss(generated, truth_video, keep, truth_video)
    assert exact.item() == pytest.approx(0.0, abs=1e-5)
    loss = hole_image_loss(generated + 0.3, wrong_kept, keep, truth_video)
    loss.backward()
    assert loss.item() > 0.1
    assert generated.grad[..., :28].abs().max() == 0 and generated.grad[..., 28:].abs().max() > 0
