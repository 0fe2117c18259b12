"""The torch engine's ablation switches: experts off equals a model whose experts contribute nothing."""

import numpy as np
import torch

from model.engines import GenerationRequest
from model.engines.torch_engine import TorchEngine
from model.pipeline import Embody4DPipeline


def _request() -> GenerationRequest:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (1, 240, 320, 3), dtype=np.uint8)
    mask = np.ones((1, 240, 320), bool)
    mask[:, :, 200:] = False
    return GenerationRequest(source_rgb=rgb, warped_rgb=rgb, warp_mask=mask, coverage=mask.astype(np.float32))


def _expert_parameters(pipeline: Embody4DPipeline) -> list[torch.nn.Parameter]:
    return [p for name, p in pipeline.transformer.named_parameters() if ".experts." in name]


def test_experts_off_matches_zeroed_experts_and_differs_from_experts_on():
    torch.manual_seed(0)
    pipeline = Embody4DPipeline.from_preset("tiny")
    assert _expert_parameters(pipeline), "the tiny preset should have expert FFNs"
    with torch.no_grad():
        for p in _expert_parameters(pipeline):
            p.normal_(0.0, 0.5)  # trained experts are not zero: make them matter
    request = _request()
    with_experts = TorchEngine(pipeline=pipeline).generate(request)
    without = TorchEngine(pipeline=pipeline, use_experts=False).generate(request)
    with torch.no_grad():
        for p in _expert_parameters(pipeline):
            p.zero_()
    zeroed = TorchEngine(pipeline=pipeline).generate(request)
    assert np.array_equal(without, zeroed)
    assert not np.array_equal(with_experts, without)
