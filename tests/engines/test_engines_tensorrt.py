"""The tensorrt engine's logic without TensorRT: cache keys, plan cache, binding checks, the import guard."""

from __future__ import annotations

import sys

import pytest

from model.engines import EngineError, create_engine
from model.engines.tensorrt_engine import cached_plan, check_bindings, engine_cache_key, import_tensorrt
from model.export.manifest import PartManifest, TensorSpec

BASE = dict(gpu_name="NVIDIA H100 80GB HBM3", tensorrt_version="10.3.0", onnx_sha256="ab" * 32, fp16=True)


@pytest.mark.parametrize(
    "change",
    [
        dict(gpu_name="NVIDIA Jetson AGX Orin"),
        dict(tensorrt_version="10.4.0"),
        dict(onnx_sha256="cd" * 32),
        dict(fp16=False),
    ],
)
def test_cache_key_changes_with_gpu_version_graph_precision(change):
    assert engine_cache_key(**BASE) == engine_cache_key(**BASE)
    assert engine_cache_key(**{**BASE, **change}) != engine_cache_key(**BASE)


class Builder:
    """Counts builds; plans are b"plan-<n>"."""

    def __init__(self) -> None:
        self.builds = 0

    def __call__(self) -> bytes:
        self.builds += 1
        return f"plan-{self.builds}".encode()


def load(plan: bytes) -> str:
    if not plan.startswith(b"plan-"):
        raise RuntimeError("corrupt plan")
    return plan.decode()


def test_plan_cache_builds_once_reuses_and_rebuilds_when_forced(tmp_path):
    build = Builder()
    assert cached_plan(tmp_path, "denoiser", "k1", build, False, load) == "plan-1"
    assert cached_plan(tmp_path, "denoiser", "k1", build, False, load) == "plan-1" and build.builds == 1
    assert cached_plan(tmp_path, "denoiser", "k2", build, False, load) == "plan-2"  # another GPU / version / graph
    assert cached_plan(tmp_path, "denoiser", "k1", build, True, load) == "plan-3"  # force_engine_update
    assert (tmp_path / "denoiser-k1.plan").read_bytes() == b"plan-3"


def test_corrupt_plan_is_rebuilt(tmp_path):
    (tmp_path / "vae_decoder-k.plan").write_bytes(b"\x00truncated")
    build = Builder()
    assert cached_plan(tmp_path, "vae_decoder", "k", build, False, load) == "plan-1" and build.builds == 1


def part() -> PartManifest:
    spec = [TensorSpec("latents", [1, 16, 1, 30, 40], "float32"), TensorSpec("timestep", [1], "float32")]
    return PartManifest(
        "denoiser.onnx", "denoiser.onnx.data", "0" * 64, spec, [TensorSpec("prediction", [1], "float32")]
    )


def test_binding_names_checked():
    check_bindings("denoiser", part(), ["timestep", "latents"], ["prediction"])
    with pytest.raises(
        EngineError, match=r"inputs do not match manifest.json: missing \['timestep'\].*force_engine_update"
    ):
        check_bindings("denoiser", part(), ["latents"], ["prediction"])
    with pytest.raises(EngineError, match=r"outputs do not match.*unexpected \['sample'\]"):
        check_bindings("denoiser", part(), ["latents", "timestep"], ["prediction", "sample"])


def test_clear_message_without_tensorrt(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt raises ImportError
    with pytest.raises(EngineError, match="tensorrt Python package is not importable.*choose engine 'onnxruntime'"):
        import_tensorrt()
    with pytest.raises(EngineError, match="not importable"):
        create_engine("tensorrt", model_path="unused")
