"""The `torch` engine behind the Engine contract (model/engines/torch_engine.py)."""

import numpy as np
import pytest
from test_model_pipeline import micro_pipeline

from model.engines import EngineError, GenerationRequest, available_engines, create_engine
from model.engines.torch_engine import TorchEngine


def request(frames: int, hw=(48, 80), src_hw=(60, 100), seed: int = 0, regions: bool = True) -> GenerationRequest:
    rng = np.random.default_rng(1)
    mask = rng.random((frames, *hw)) > 0.3
    region = np.zeros((frames, *hw), np.float32)
    region[:, 10:30, 20:60] = 1.0
    src_region = np.zeros((frames, *src_hw), np.float32)
    src_region[:, 12:36, 25:75] = 1.0
    return GenerationRequest(
        source_rgb=rng.integers(0, 256, (frames, *src_hw, 3), dtype=np.uint8),
        warped_rgb=rng.integers(0, 256, (frames, *hw, 3), dtype=np.uint8) * mask[..., None].astype(np.uint8),
        warp_mask=mask,
        coverage=mask.astype(np.float32),
        source_interaction=src_region if regions else None,
        target_interaction=region if regions else None,
        caption="panda arm lifts a cube",
        seed=seed,
    )


@pytest.fixture(scope="module")
def engine():
    return TorchEngine(pipeline=micro_pipeline(), steps=1)


@pytest.mark.parametrize("frames", [1, 3, 5])  # image mode; 3 frames pad to 5 and crop back
def test_generate_contract(engine, frames):
    out = engine.generate(request(frames))
    assert out.shape == (frames, 48, 80, 3) and out.dtype == np.uint8


def test_same_seed_same_frames(engine):
    a, b, c = (engine.generate(request(1, seed=s)) for s in (7, 7, 8))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_registered_and_bad_paths(tmp_path):
    assert "torch" in available_engines()
    with pytest.raises(EngineError, match="pipeline_config.json"):
        create_engine("torch", model_path=str(tmp_path))
    with pytest.raises(EngineError, match="steps must be >= 1"):
        TorchEngine(pipeline=micro_pipeline(), steps=0)
    with pytest.raises(EngineError, match="unknown preset"):
        TorchEngine(preset="huge")


def test_rejects_non_uint8(engine):
    bad = request(1)
    bad.warped_rgb = bad.warped_rgb.astype(np.float32)
    with pytest.raises(EngineError, match="warped_rgb must be uint8"):
        engine.generate(bad)
