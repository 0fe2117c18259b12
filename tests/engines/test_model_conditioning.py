"""What the network sees of the warp and what its output keeps of it (model/conditioning.py), the pipeline setting
that selects it, GenerationRequest.frames, and the torch engine applying both ends."""

import numpy as np
import pytest
import torch
from test_model_pipeline import micro_pipeline

from model.conditioning import CONDITION_FILLS, check_condition_fill, conditioning_frames, keep_warped
from model.engines import GenerationRequest
from model.engines.torch_engine import TorchEngine
from model.pipeline import Embody4DPipeline, PipelineSettings
from model.presets import load_preset

torch.set_num_threads(1)


def warped_clip(frames: int = 2, hw=(32, 48), seed: int = 0):
    """Random warped frames whose holes hold garbage (not 0), a mask with a hole block, and a depth map."""
    rng = np.random.default_rng(seed)
    rgb = rng.integers(1, 256, (frames, *hw, 3), dtype=np.uint8)
    mask = rng.random((frames, *hw)) > 0.2
    mask[:, 8:20, 12:30] = False  # a large disocclusion besides scattered cracks
    depth = rng.uniform(1.0, 3.0, (frames, *hw)).astype(np.float32)
    return rgb, mask, depth


def test_fill_names():
    assert CONDITION_FILLS == ("none", "pushpull", "telea")
    for fill in CONDITION_FILLS:
        check_condition_fill(fill)
    with pytest.raises(ValueError, match="condition_fill"):
        check_condition_fill("bogus")


def test_none_zeroes_holes_and_keeps_valid_pixels():
    rgb, mask, depth = warped_clip()
    assert rgb[~mask].min() > 0  # the holes hold garbage the network must not see
    out = conditioning_frames(rgb, mask, depth, "none")
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.array_equal(out[mask], rgb[mask])
    assert (out[~mask] == 0).all()


@pytest.mark.parametrize("fill", ["pushpull", "telea"])
@pytest.mark.parametrize("with_depth", [True, False])
def test_filled_holes_and_valid_pixels_unchanged(fill, with_depth):
    rgb, mask, depth = warped_clip()
    out = conditioning_frames(rgb, mask, depth if with_depth else None, fill)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.array_equal(out[mask], rgb[mask])
    holes = out[~mask]
    assert holes.any(), "holes were left black"
    # the hole content comes from the valid pixels, not from the garbage the warp left there
    garbage = rgb.copy()
    garbage[~mask] = 0
    again = conditioning_frames(garbage, mask, depth if with_depth else None, fill)
    if fill == "pushpull":
        assert np.array_equal(out, again)
    else:  # OpenCV's Telea lets a few grey levels of the hole content through on isolated one-pixel holes
        assert np.abs(out.astype(int) - again).max() <= 8


def test_pushpull_fills_each_frame_on_its_own():
    rgb, mask, depth = warped_clip(frames=2)
    rgb[0][mask[0]] = 30
    rgb[1][mask[1]] = 220
    out = conditioning_frames(rgb, mask, depth, "pushpull")
    assert np.abs(out[0][~mask[0]].astype(int) - 30).max() <= 1
    assert np.abs(out[1][~mask[1]].astype(int) - 220).max() <= 1


def test_pushpull_with_depth_fills_from_the_far_side():
    """A disocclusion between a near bright surface (left) and a far dark one (right) shows what lay behind the
    near edge: with depth, the hole centre takes (mostly) the far colour; without depth it is a plain blend."""
    h, w = 32, 48
    bright, dark = 230, 20
    rgb = np.zeros((1, h, w, 3), np.uint8)
    rgb[:, :, : w // 2] = bright
    rgb[:, :, w // 2 :] = dark
    depth = np.where(np.arange(w) < w // 2, 1.0, 4.0).astype(np.float32)[None, None].repeat(h, 1)
    mask = np.ones((1, h, w), bool)
    mask[:, :, 16:32] = False  # symmetric about the edge at w/2
    depth[~mask] = 0.0
    centre = (slice(None), slice(h // 4, 3 * h // 4), slice(22, 26))
    with_depth = conditioning_frames(rgb, mask, depth, "pushpull")[centre].astype(float).mean()
    without = conditioning_frames(rgb, mask, None, "pushpull")[centre].astype(float).mean()
    midpoint = (bright + dark) / 2
    assert abs(with_depth - dark) < abs(with_depth - bright), (with_depth, bright, dark)
    assert with_depth < midpoint - 40
    assert with_depth < without - 40  # the depth is what moved it: without it the hole centre is a blend
    assert abs(without - midpoint) < 40


def test_unknown_fill_raises():
    rgb, mask, depth = warped_clip()
    with pytest.raises(ValueError, match="condition_fill"):
        conditioning_frames(rgb, mask, depth, "bogus")


def test_keep_warped_blends_by_coverage():
    rng = np.random.default_rng(3)
    generated = rng.integers(0, 256, (2, 8, 10, 3), dtype=np.uint8)
    warped = rng.integers(0, 256, (2, 8, 10, 3), dtype=np.uint8)
    ones, zeros = np.ones((2, 8, 10), np.float32), np.zeros((2, 8, 10), np.float32)
    assert np.array_equal(keep_warped(generated, warped, ones), warped)
    assert np.array_equal(keep_warped(generated, warped, zeros), generated)
    half = keep_warped(generated, warped, np.full((2, 8, 10), 0.5, np.float32))
    expected = np.rint((generated.astype(np.float64) + warped.astype(np.float64)) / 2)
    assert half.dtype == np.uint8 and np.array_equal(half, expected.astype(np.uint8))
    # per-pixel coverage: pixels copied where 1, generated where 0
    coverage = (rng.random((2, 8, 10)) > 0.5).astype(np.float32)
    mixed = keep_warped(generated, warped, coverage)
    assert np.array_equal(mixed, np.where(coverage[..., None] > 0, warped, generated))


def test_pipeline_settings_validate_condition_fill():
    with pytest.raises(ValueError, match="condition_fill"):
        PipelineSettings(condition_fill="bogus")
    settings = PipelineSettings(condition_fill="telea", keep_warped_pixels=True)
    assert settings.condition_fill == "telea" and settings.keep_warped_pixels is True
    assert PipelineSettings().condition_fill == "none" and PipelineSettings().keep_warped_pixels is False
    tiny = load_preset("tiny")["pipeline"]
    assert tiny["condition_fill"] == "pushpull" and tiny["keep_warped_pixels"] is True


def test_settings_survive_save_and_load(tmp_path):
    pipeline = micro_pipeline(condition_fill="telea", keep_warped_pixels=True)
    pipeline.save_pretrained(tmp_path / "model")
    loaded = Embody4DPipeline.from_pretrained(str(tmp_path / "model"))
    assert loaded.settings.condition_fill == "telea" and loaded.settings.keep_warped_pixels is True


def full_request(frames: int = 5, hw=(32, 64), src_hw=(40, 72), seed: int = 11) -> GenerationRequest:
    rng = np.random.default_rng(2)
    mask = np.ones((frames, *hw), bool)
    mask[:, 8:24, 20:44] = False
    mask &= rng.random((frames, *hw)) > 0.05
    coverage = np.where(mask, 1.0, 0.0).astype(np.float32)
    coverage[:, 4:8, :] = np.where(mask[:, 4:8, :], 0.5, 0.0)  # a ramp band: neither copied nor generated
    warped = rng.integers(1, 256, (frames, *hw, 3), dtype=np.uint8)
    warped[~mask] = 0
    region = np.zeros((frames, *hw), np.float32)
    region[:, 10:20, 10:30] = 1.0
    src_region = np.zeros((frames, *src_hw), np.float32)
    src_region[:, 5:15, 5:25] = 1.0
    return GenerationRequest(
        source_rgb=rng.integers(0, 256, (frames, *src_hw, 3), dtype=np.uint8),
        warped_rgb=warped,
        warp_mask=mask,
        coverage=coverage,
        warped_depth=np.where(mask, rng.uniform(1, 2, (frames, *hw)), 0).astype(np.float32),
        source_interaction=src_region,
        target_interaction=region,
        caption="panda arm lifts a cube",
        seed=seed,
    )


def test_request_frames_slices_every_array():
    request = full_request(frames=5)
    part = request.frames(1, 3)
    assert isinstance(part, GenerationRequest) and part.num_frames == 2
    for name in (
        "source_rgb",
        "warped_rgb",
        "warp_mask",
        "coverage",
        "warped_depth",
        "source_interaction",
        "target_interaction",
    ):
        assert np.array_equal(getattr(part, name), getattr(request, name)[1:3]), name
    assert part.caption == request.caption and part.seed == request.seed
    one = request.frames(4, 5)
    assert one.num_frames == 1 and np.array_equal(one.source_rgb[0], request.source_rgb[4])
    # optional arrays left out stay None
    bare = GenerationRequest(
        source_rgb=request.source_rgb,
        warped_rgb=request.warped_rgb,
        warp_mask=request.warp_mask,
        coverage=request.coverage,
    ).frames(0, 1)
    assert bare.warped_depth is None and bare.target_interaction is None and bare.source_interaction is None
    assert bare.num_frames == 1 and bare.caption is None and bare.seed == 0


@pytest.fixture(scope="module")
def kept_and_free():
    """Outputs of the same random-weight network with keep_warped_pixels on and off (pushpull conditioning)."""
    request = full_request(frames=1)
    kept = TorchEngine(pipeline=micro_pipeline(condition_fill="pushpull", keep_warped_pixels=True), steps=1)
    free = TorchEngine(pipeline=micro_pipeline(condition_fill="pushpull", keep_warped_pixels=False), steps=1)
    return request, kept.generate(request), free.generate(request)


def test_engine_keeps_warped_pixels(kept_and_free):
    request, kept, _ = kept_and_free
    full = request.coverage == 1.0
    assert full.any() and (~request.warp_mask).any()
    assert kept.shape == request.warped_rgb.shape and kept.dtype == np.uint8
    assert np.array_equal(kept[full], request.warped_rgb[full])
    holes = ~request.warp_mask
    assert not np.array_equal(kept[holes], request.warped_rgb[holes]), "holes were copied from the warp"


def test_engine_keeps_every_warped_pixel_whatever_its_coverage(kept_and_free):
    request, kept, free = kept_and_free
    # the warp mask decides, not the soft coverage: pixels at coverage 0.5 are the warp's exactly
    half = (request.coverage == 0.5) & request.warp_mask
    assert half.any() and not np.array_equal(free[half], request.warped_rgb[half])
    assert np.array_equal(kept[half], request.warped_rgb[half])
    holes = ~request.warp_mask
    assert np.array_equal(kept[holes], free[holes])  # coverage 0: the network's own pixels


def test_engine_without_keep_does_not_copy(kept_and_free):
    request, _, free = kept_and_free
    full = request.coverage == 1.0
    assert not np.array_equal(free[full], request.warped_rgb[full])


def test_engine_conditions_the_network_on_the_filled_warp():
    """The network sees conditioning_frames(...): hole garbage is invisible to it, and the fill changes its input."""
    request = full_request(frames=1)
    garbage = full_request(frames=1)
    garbage.warped_rgb = garbage.warped_rgb.copy()
    garbage.warped_rgb[~garbage.warp_mask] = 200
    outputs = {}
    for fill in ("none", "pushpull"):
        engine = TorchEngine(pipeline=micro_pipeline(condition_fill=fill), steps=1)
        outputs[fill] = engine.generate(request)
        assert np.array_equal(outputs[fill], engine.generate(garbage)), fill
    assert not np.array_equal(outputs["none"], outputs["pushpull"])
