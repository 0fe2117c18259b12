"""Engines behind one interface (DESIGN.md contract 3): warp, torch, onnxruntime, tensorrt."""
from model.engines.base import Engine, EngineError, GenerationRequest, available_engines, create_engine

__all__ = ["Engine", "EngineError", "GenerationRequest", "available_engines", "create_engine"]
