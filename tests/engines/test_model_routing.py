"""Routing rule, top-2 weights and residual estimator (model/routing.py)."""

import pytest
import torch

from model.routing import COPY, INPAINT, REPAIR, ConfidenceRouter, FrameConv3d, smooth, to_latent_grid

torch.set_num_threads(1)


def _router(**overrides) -> ConfidenceRouter:
    config = dict(
        estimator_channels=(8, 16),
        estimator_groups=4,
        residual_kernel=1,
        coverage_kernel=1,
        weight_kernel=1,
        copy_min_coverage=0.8,
        copy_max_residual=0.2,
        inpaint_max_coverage=0.4,
        inpaint_min_residual=0.6,
        force_inpaint_residual=1.5,
        auxiliary_weight=0.25,
    )
    config.update(overrides)
    return ConfidenceRouter(latent_channels=4, **config)


def _maps(coverage_values, residual_values):
    """One latent frame of 1 x N columns with the given coverage and residual magnitude per column."""
    coverage = torch.tensor(coverage_values, dtype=torch.float32).view(1, 1, 1, 1, -1)
    residual = torch.tensor(residual_values, dtype=torch.float32).view(1, 1, 1, 1, -1).expand(1, 4, 1, 1, -1)
    # alternate signs per channel: the magnitude is channel-aggregated |r|, the sign must not matter
    signs = torch.tensor([1.0, -1.0, 1.0, -1.0]).view(1, 4, 1, 1, 1)
    return residual * signs, coverage


def test_routing_rule_regions():
    router = _router()
    # columns: copy, repair (high coverage, large residual), inpaint (low coverage, high residual),
    #          forced inpaint (high coverage, extreme residual), repair (low coverage, low residual),
    #          repair (mid coverage, mid residual)
    residual, coverage = _maps([0.95, 0.95, 0.1, 0.95, 0.1, 0.6], [0.1, 0.9, 0.7, 2.0, 0.1, 0.4])
    routes = router.route_map(residual, coverage)[0, 0, 0].tolist()
    assert routes == [COPY, REPAIR, INPAINT, INPAINT, REPAIR, REPAIR]


def test_top2_weights_sum_to_one_and_pick_neighbours():
    router = _router()
    residual, coverage = _maps([0.95, 0.95, 0.1, 0.6], [0.1, 0.9, 0.7, 0.3])
    weights = router.route_weights(residual, coverage)
    assert weights.shape == (1, 1, 1, 4, 3)
    torch.testing.assert_close(weights.sum(-1), torch.ones(1, 1, 1, 4))
    w = weights[0, 0, 0]
    assert w[0].tolist() == pytest.approx([0.75, 0.25, 0.0])  # copy + repair
    assert w[1].tolist() == pytest.approx([0.0, 0.75, 0.25])  # repair leaning to inpaint (residual above middle)
    assert w[2].tolist() == pytest.approx([0.0, 0.25, 0.75])  # inpaint + repair
    assert w[3].tolist() == pytest.approx([0.25, 0.75, 0.0])  # repair leaning to copy
    assert ((w > 0).sum(-1) == 2).all()


def test_smoothed_weights_still_sum_to_one():
    router = _router(residual_kernel=3, coverage_kernel=5, weight_kernel=3)
    g = torch.Generator().manual_seed(0)
    residual = torch.randn(2, 4, 3, 6, 10, generator=g)
    coverage = torch.rand(2, 1, 3, 6, 10, generator=g)
    weights = router.route_weights(residual, coverage)
    assert weights.shape == (2, 3, 6, 10, 3)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 6, 10))
    assert weights.min() >= 0


def test_smoothing_removes_an_isolated_fragment():
    x = torch.zeros(1, 1, 1, 7, 7)
    x[..., 3, 3] = 1.0
    y = smooth(x, 3)
    assert y.max() == pytest.approx(1 / 9)
    with pytest.raises(ValueError, match="odd"):
        smooth(x, 4)


def test_estimator_shapes_and_gradients():
    router = _router()
    warped = torch.randn(2, 4, 2, 6, 10, requires_grad=True)
    coverage = torch.rand(2, 1, 2, 6, 10)
    residual = router(warped, coverage)
    assert residual.shape == warped.shape
    residual.square().mean().backward()
    for name, parameter in router.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    with pytest.raises(ValueError, match="coverage_latent must be"):
        router(warped, coverage[:, :, :1])


def test_bad_thresholds_are_rejected():
    with pytest.raises(ValueError, match="copy_max_residual < inpaint_min_residual"):
        _router(copy_max_residual=0.7)
    with pytest.raises(ValueError, match="inpaint_max_coverage <= copy_min_coverage"):
        _router(inpaint_max_coverage=0.9)


def test_to_latent_grid_follows_the_causal_vae():
    frames = torch.arange(9, dtype=torch.float32).view(1, 1, 9, 1, 1).expand(1, 1, 9, 16, 16)
    grid = to_latent_grid(frames, (2, 2))
    assert grid.shape == (1, 1, 3, 2, 2)
    assert grid[0, 0, :, 0, 0].tolist() == [0.0, 2.5, 6.5]
    assert to_latent_grid(frames[:, :, :1], (2, 2)).shape == (1, 1, 1, 2, 2)
    with pytest.raises(ValueError, match="4k\\+1"):
        to_latent_grid(frames[:, :, :8], (2, 2))


def test_single_frame_conv_path_is_exact():
    conv = FrameConv3d(4, 6, 3, padding=1)
    x = torch.randn(2, 4, 1, 5, 7)
    torch.testing.assert_close(conv(x), torch.nn.Conv3d.forward(conv, x), rtol=1e-5, atol=1e-6)
    clip = torch.randn(2, 4, 3, 5, 7)
    assert torch.equal(conv(clip), torch.nn.Conv3d.forward(conv, clip))


def _identity_router() -> ConfidenceRouter:
    """A router whose estimator returns its input latents, so the test controls the residual magnitudes."""
    router = ConfidenceRouter(latent_channels=4, estimator_channels=(8, 16), estimator_groups=4).eval()
    router.forward = lambda warped_latents, coverage_latent: warped_latents
    return router


def test_calibrated_thresholds_route_the_asked_quantiles():
    torch.manual_seed(0)
    router = _identity_router()
    # left half fully covered with small residuals, right half a hole with larger ones
    coverage = torch.zeros(2, 1, 1, 16, 16)
    coverage[..., :8] = 1.0
    latents = [torch.randn(2, 4, 1, 16, 16) * torch.where(coverage > 0, 0.3, 1.0) for _ in range(3)]
    thresholds = router.calibrate_thresholds(latents, [coverage] * 3, copy_quantile=0.6, inpaint_quantile=0.3)
    assert thresholds["copy_max_residual"] < thresholds["inpaint_min_residual"] <= thresholds["force_inpaint_residual"]
    assert router.config.copy_max_residual == thresholds["copy_max_residual"]  # saved with the model's config
    routes, covered, hole = [], [], []
    for z in latents:
        _, smoothed = router._smoothed(z, coverage)
        routes.append(router.route_map(z, coverage).flatten())
        covered.append((smoothed[:, 0] >= router.config.copy_min_coverage).flatten())
        hole.append((smoothed[:, 0] < router.config.inpaint_max_coverage).flatten())
    routes, covered, hole = torch.cat(routes), torch.cat(covered), torch.cat(hole)
    assert (routes[covered] == COPY).float().mean() == pytest.approx(0.6, abs=0.03)
    assert (routes[hole] == INPAINT).float().mean() == pytest.approx(0.7, abs=0.03)


def test_calibration_keeps_thresholds_ordered_when_holes_look_easy():
    torch.manual_seed(0)
    router = _identity_router()
    coverage = torch.zeros(1, 1, 1, 16, 16)
    coverage[..., :8] = 1.0
    latents = [torch.randn(1, 4, 1, 16, 16) * torch.where(coverage > 0, 1.0, 0.1)]  # holes below the copy quantile
    thresholds = router.calibrate_thresholds(latents, [coverage])
    assert thresholds["copy_max_residual"] < thresholds["inpaint_min_residual"] <= thresholds["force_inpaint_residual"]
    ConfidenceRouter(**{**router.config, **thresholds})  # the constructor's own checks accept them


def test_calibration_needs_covered_and_hole_latents():
    router = _identity_router()
    with pytest.raises(ValueError, match="coverage"):
        router.calibrate_thresholds([torch.randn(1, 4, 1, 8, 8)], [torch.ones(1, 1, 1, 8, 8)])
