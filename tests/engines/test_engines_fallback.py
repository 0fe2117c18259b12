"""Engine selection with fallback: order tensorrt -> onnxruntime -> torch -> warp, ERROR logs, never silent."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from model.engines import Engine, EngineError, base
from model.engines.base import fallback_order, register_engine
from model.engines.fallback import create_engine_with_fallback, fallback_chain

log = logging.getLogger("test.fallback")


class Broken(Engine):
    def __init__(self, model_path: str | None = None, steps: int = 2) -> None:
        raise EngineError(f"broken engine (model_path={model_path})")

    def generate(self, request):
        raise AssertionError


class Working(Engine):
    name = "working"

    def __init__(self, steps: int = 2) -> None:  # takes no model_path: options are filtered per engine
        self.steps = steps

    def generate(self, request):
        return request.warped_rgb


@pytest.fixture
def engines(monkeypatch):
    """Point every engine name at a fake; each test marks which ones work."""

    def set_engines(working: set[str]) -> None:
        for name in fallback_order():
            target = "Working" if name in working else "Broken"
            monkeypatch.setitem(base._REGISTRY, name, replace(base._REGISTRY[name], target=f"{__name__}:{target}"))

    return set_engines


def test_chain_order():
    assert fallback_chain("tensorrt") == ["tensorrt", "onnxruntime", "torch", "warp"]
    assert fallback_chain("torch") == ["torch", "warp"]
    with pytest.raises(EngineError, match="unknown engine 'fast'"):
        fallback_chain("fast")


def test_falls_back_in_order_with_error_logs(engines, caplog):
    engines({"torch", "warp"})
    with caplog.at_level(logging.ERROR, logger="test.fallback"):
        engine = create_engine_with_fallback("tensorrt", True, log, model_path="/exports/x", steps=3)
    assert isinstance(engine, Working) and engine.steps == 3
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "engine 'tensorrt' cannot start" in messages[0] and "falling back to 'onnxruntime'" in messages[0]
    assert "model_path=/exports/x" in messages[0]  # the requested engine got the export directory,
    assert "model_path=/exports/x" in messages[1] and "falling back to 'torch'" in messages[1]  # onnxruntime too,
    # torch (a model directory, not an export) starts with its default: Working takes no model_path at all
    assert "running engine 'torch' instead of the requested 'tensorrt'" in messages[2]


def test_no_fallback_raises_and_logs(engines, caplog):
    engines({"warp"})
    with (
        caplog.at_level(logging.ERROR, logger="test.fallback"),
        pytest.raises(EngineError, match="no engine could start"),
    ):
        create_engine_with_fallback("onnxruntime", False, log)
    assert any("fallback is off" in r.getMessage() for r in caplog.records)


def test_requested_engine_that_works_logs_nothing(engines, caplog):
    engines(set(fallback_order()))
    with caplog.at_level(logging.ERROR, logger="test.fallback"):
        create_engine_with_fallback("onnxruntime", True, log)
    assert not caplog.records


def test_nothing_starts(engines):
    engines(set())
    with pytest.raises(EngineError, match=r"tried \['torch', 'warp'\]"):
        create_engine_with_fallback("torch", True, log)


def test_real_chain_without_tensorrt_reaches_onnxruntime(tmp_path, caplog):
    """With the real engines: TensorRT is not installed here, so onnxruntime serves the export directory."""
    pytest.importorskip("onnxruntime")
    from test_model_pipeline import micro_pipeline

    from model.export import export_model

    export_model(micro_pipeline(), tmp_path, "image", 32, 64, steps=1)
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed: the tensorrt engine would start")
    except ImportError:
        pass
    with caplog.at_level(logging.ERROR, logger="test.fallback"):
        engine = create_engine_with_fallback("tensorrt", True, log, model_path=str(tmp_path), steps=1)
    assert engine.name == "onnxruntime"
    assert "tensorrt Python package is not importable" in caplog.records[0].getMessage()


def test_torch_standing_in_for_an_export_engine_gets_no_export_path(engines, caplog):
    engines({"warp"})
    with caplog.at_level(logging.ERROR, logger="test.fallback"):
        assert isinstance(create_engine_with_fallback("onnxruntime", True, log, model_path="/exports/x"), Working)
    messages = [r.getMessage() for r in caplog.records]
    assert "model_path=/exports/x" in messages[0] and "engine 'torch' cannot start" in messages[1]
    assert "model_path=None" in messages[1]


def test_registered_engine_joins_the_fallback(monkeypatch, engines, caplog):
    """One registry: an engine added with register_engine is created, ranked and given model paths like the others."""
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))
    engines({"warp"})
    register_engine("fast", f"{__name__}:Broken")  # default rank: after the network engines, before warp
    assert fallback_chain("torch") == ["torch", "fast", "warp"]
    register_engine("first", f"{__name__}:Working", fallback_rank=0, model_path_kind="export directory")
    assert fallback_order()[:2] == ["first", "tensorrt"] and "first" in base.available_engines()
    with caplog.at_level(logging.ERROR, logger="test.fallback"):
        engine = create_engine_with_fallback("fast", True, log, model_path="/m")
    assert isinstance(engine, Working)
    assert (
        "engine 'fast' cannot start" in caplog.records[0].getMessage()
        and "model_path=/m" in caplog.records[0].getMessage()
    )
    assert create_engine_with_fallback("first", False, log, steps=4).steps == 4
    register_engine("warp", f"{__name__}:Broken")  # replacing a class keeps its place
    assert fallback_order()[-1] == "warp"
