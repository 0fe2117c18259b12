"""The warp on depth as real cameras give it: depth repair (flying pixels, colour-guided filling, reliability), the
noise-aware discontinuity test, and the bounds on simulator scenes with stereo-sensor-like depth."""

import numpy as np
import pytest

from model.depth_sensor import StereoSensor, expected_inverse_depth_error, sensor_depth
from model.geometry import WarpSettings, fill_depth_holes, forward_warp, forward_warp_clip, repair_depth
from model.geometry.base import UNRELIABLE_COVERAGE
from model.geometry.depth_repair import flying_pixels


def two_surfaces(height=40, width=60, edge=30):
    """A near red surface (1 m) on the right of column `edge`, a far blue one (2 m) on the left."""
    depth = np.full((height, width), 2.0, np.float32)
    depth[:, edge:] = 1.0
    image = np.zeros((height, width, 3), np.uint8)
    image[:, :edge] = (20, 40, 200)
    image[:, edge:] = (200, 30, 20)
    return depth, image


def test_guided_filling_follows_the_colour_edge():
    depth, image = two_surfaces()
    holes = depth.copy()
    holes[:, 26:34] = 0.0  # an invalid band straddling the edge at column 30
    filled = fill_depth_holes(holes, image=image)
    np.testing.assert_array_equal(filled, depth)
    # without colour the farther side wins everywhere in the band (the stereo-shadow rule)
    assert np.all(fill_depth_holes(holes)[:, 26:34] == 2.0)


def test_guided_filling_uses_columns_too():
    depth, image = two_surfaces()
    depth, image = depth.T.copy(), image.transpose(1, 0, 2).copy()  # the edge is now horizontal
    holes = depth.copy()
    holes[27:33, :] = 0.0  # a band across the whole width: no row has a valid pixel beside the hole
    np.testing.assert_array_equal(fill_depth_holes(holes, image=image), depth)


def test_flying_pixels_are_the_ones_between_two_surfaces():
    depth, _ = two_surfaces()
    depth[5, 30] = 1.5  # a mixed measurement at the edge
    depth[12, 10] = 1.99  # noise on the far surface
    flying = flying_pixels(depth, 0.05)
    assert flying[5, 30] and flying.sum() == 1


def test_repair_leaves_clean_depth_alone_and_marks_guesses_at_edges():
    depth, image = two_surfaces()
    same, reliability = repair_depth(depth, image)
    np.testing.assert_array_equal(same, depth)
    assert reliability.min() == 1.0
    holes = depth.copy()
    holes[:, 27:33] = 0.0
    holes[10, 5] = 0.0  # a dropout inside the far surface: guessed, but far from any edge
    repaired, reliability = repair_depth(holes, image)
    np.testing.assert_array_equal(repaired, depth)
    unreliable_columns = np.flatnonzero((reliability == 0).any(axis=0))
    np.testing.assert_array_equal(unreliable_columns, [28, 29, 30, 31])  # guessed and within 1 px of the edge
    assert reliability[10, 5] == 1.0


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_unreliable_source_pixels_keep_their_colour_at_lower_coverage(backend):
    depth, image = two_surfaces()
    K = np.array([[50.0, 0, 29.5], [0, 50.0, 19.5], [0, 0, 1]])
    reliability = np.ones_like(depth)
    reliability[:, 20:24] = 0.0
    plain = forward_warp_clip(image[None], depth[None], K, K, np.eye(4), depth.shape, backend=backend)
    marked = forward_warp_clip(
        image[None], depth[None], K, K, np.eye(4), depth.shape, backend=backend, reliability=reliability[None]
    )
    assert plain.mask.all() and marked.mask.all()
    # identity view: a target pixel is unreliable exactly where its source pixel is (at pixel centres)
    unreliable = reliability == 0
    np.testing.assert_allclose(marked.coverage[0][unreliable], UNRELIABLE_COVERAGE * plain.coverage[0][unreliable])
    np.testing.assert_array_equal(marked.coverage[0][~unreliable], plain.coverage[0][~unreliable])
    assert UNRELIABLE_COVERAGE < 0.5
    np.testing.assert_array_equal(marked.image, plain.image)  # the colour is still there for the engine to judge


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_noise_aware_discontinuity_test_keeps_a_noisy_wall_whole(backend):
    # a wide-baseline move over a far wall measured by a stereo camera: per-pixel depth noise alone opens gaps
    height, width = 60, 80
    K = np.array([[80.0, 0, 39.5], [0, 80.0, 29.5], [0, 0, 1]])
    sensor = StereoSensor(
        subpixel_rms_px=0.3,
        edge_band_px=0.0,
        shadow_side="none",
        flying_fraction=0.0,
        dropout_fraction=0.0,
        misregistration_px=(0.0, 0.0),
        native_width=width,
    )
    noisy = sensor.corrupt(np.full((height, width), 6.0, np.float32), K, np.random.default_rng(0))
    image = np.random.default_rng(1).integers(0, 255, (height, width, 3), dtype=np.uint8)
    T = np.eye(4)
    T[0, 3] = -0.5
    blind = forward_warp_clip(image[None], noisy[None], K, K, T, (height, width), backend=backend)
    aware = forward_warp_clip(
        image[None],
        noisy[None],
        K,
        K,
        T,
        (height, width),
        backend=backend,
        settings=WarpSettings(depth_noise_inv_m=sensor.inverse_depth_sigma(K, width)),
    )
    reachable = (slice(5, -5), slice(5, width - 12))  # the wall stays in view there
    print(blind.mask[0][reachable].mean(), aware.mask[0][reachable].mean())
    assert blind.mask[0][reachable].mean() < 0.95
    assert aware.mask[0][reachable].mean() > 0.98


def test_clean_depth_results_unchanged_by_the_repair():
    depth, image = two_surfaces()
    K = np.array([[50.0, 0, 29.5], [0, 50.0, 19.5], [0, 0, 1]])
    T = np.eye(4)
    T[0, 3] = 0.05
    repaired, reliability = repair_depth(depth, image)
    before = forward_warp(image, depth, K, K, T, depth.shape)
    after = forward_warp_clip(image[None], repaired[None], K, K, T, depth.shape, reliability=reliability[None])
    np.testing.assert_array_equal(after.image[0], before.image)
    np.testing.assert_array_equal(after.mask[0], before.mask)


def psnr_on(mask, image, reference):
    mse = np.mean((image[mask].astype(np.float64) - reference[mask].astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


@pytest.mark.slow
def test_sim_scenes_with_stereo_depth_stay_within_two_db_of_clean(tmp_path):
    """Held-out morphologies rendered by the data engine; the source depth replaced by the stereo sensor model."""
    from offline_training.data import open_dataset
    from offline_training.synth import SynthConfig, synthesize
    from offline_training.training.batches import target_view

    synthesize(
        SynthConfig(
            out=str(tmp_path),
            split="test",
            num_samples=4,
            seed=11,
            num_frames=1,
            height=240,
            width=320,
            samples_per_shard=4,
        ),
        show_progress=False,
    )
    covered, coverage = {"clean": [], "stereo": []}, {"clean": [], "stereo": []}
    for i, sample in enumerate(open_dataset(str(tmp_path))):
        for model in ("clean", "stereo"):
            clip = dict(sample, src_depth=sensor_depth(sample["src_depth"], sample["K_src"], model, seed=i))
            noise = expected_inverse_depth_error(model, sample["K_src"], 320)
            warp = target_view(clip, WarpSettings(depth_noise_inv_m=noise)).warp
            # pixels of the truth: PSNR of the warped colour on the pixels the warp claims
            covered[model].append(psnr_on(warp.mask, warp.image, sample["tgt_rgb"]))
            coverage[model].append(warp.mask.mean())
    print({m: (np.mean(covered[m]), np.mean(coverage[m])) for m in covered})
    assert np.mean(covered["stereo"]) >= np.mean(covered["clean"]) - 2.0
    assert np.mean(coverage["stereo"]) >= 0.95 * np.mean(coverage["clean"])


def test_colour_guided_filling_sharpens_middlebury_motorcycle(motorcycle):
    """Real stereo depth: Middlebury's ground-truth disparity misses 7 % of the left image, mostly the occlusion
    band beside edges. Filling it from the neighbour of most similar colour instead of the farther side (the
    librealsense rule) puts the band's pixels on the right surface: sharper at the same coverage."""
    left, right, K_left, K_right, T_right_left = (
        motorcycle.left,
        motorcycle.right,
        motorcycle.K_left,
        motorcycle.K_right,
        motorcycle.T_right_left,
    )
    depth = np.nan_to_num(motorcycle.depth, nan=0.0)  # no ground truth: 0, a hole to fill
    farther = forward_warp(left, fill_depth_holes(depth), K_left, K_right, T_right_left, right.shape[:2])
    guided = forward_warp(left, fill_depth_holes(depth, image=left), K_left, K_right, T_right_left, right.shape[:2])
    assert psnr_on(guided.mask, guided.image, right) > psnr_on(farther.mask, farther.image, right) + 0.5
    assert guided.mask.mean() > farther.mask.mean() - 0.01
