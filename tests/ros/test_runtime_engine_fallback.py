"""The runtime starts its engine through the fallback chain, and says so at ERROR level."""

import pytest

from embody4d_ros.params import validate
from embody4d_ros.runtime import VirtualCameraRuntime
from model.engines import EngineError


def _runtime(**overrides):
    lines = []
    params = validate(overrides)
    runtime = VirtualCameraRuntime(params, publish=lambda frame: None, log=lines.append)
    return runtime, lines


def test_unavailable_engine_falls_back_with_an_error_line():
    # TensorRT cannot be imported on these machines; without an export directory onnxruntime cannot start either.
    runtime, lines = _runtime(engine="tensorrt", engine_fallback=True)
    assert runtime.engine.name in ("torch", "warp")
    assert any(line.startswith("ERROR") and "tensorrt" in line for line in lines)
    assert any(line.startswith("ERROR") and "instead of the requested 'tensorrt'" in line for line in lines)


def test_fallback_off_refuses_to_substitute():
    with pytest.raises(EngineError, match="tensorrt"):
        _runtime(engine="tensorrt", engine_fallback=False)
