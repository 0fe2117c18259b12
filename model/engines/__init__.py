"""Engines behind one interface (docs/DESIGN.md contract 3): warp, torch, onnxruntime, tensorrt.

base        the Engine contract, GenerationRequest and the one registry (class, fallback rank, model-path kind)
fallback    create_engine_with_fallback along the registry's fallback order
processing  the pre- and post-processing every network engine shares
warp, torch_engine, exported (the exported-graph runner), onnxruntime_engine, tensorrt_engine
"""

from model.engines.base import (
    Engine,
    EngineError,
    GenerationRequest,
    available_engines,
    create_engine,
    fallback_order,
    register_engine,
)

__all__ = [
    "Engine",
    "EngineError",
    "GenerationRequest",
    "available_engines",
    "create_engine",
    "fallback_order",
    "register_engine",
]
