"""The `tensorrt` engine: TensorRT engines built from the exported ONNX graphs, cached, run with fixed bindings.

One TensorRT engine per exported part, built with FP16 where the GPU has fast FP16, cached under
`cache_dir/<part>-<key>.plan` where the key hashes the GPU name, the TensorRT version, the graph's sha256 and the
precision; any change means another key, hence a rebuild. `force_engine_update=True` rebuilds even when a plan
exists (Isaac ROS's `force_engine_update`). A plan that fails to deserialise (truncated, foreign) is rebuilt once.

TensorRT is imported lazily: without it the engine raises EngineError saying so, and everything around it (keys,
cache, binding checks) is plain Python, tested without TensorRT.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from model.engines.base import EngineError
from model.engines.exported import ExportedGraphEngine
from model.export.manifest import PartManifest

log = logging.getLogger(__name__)
DEFAULT_CACHE = Path.home() / ".cache" / "embody4d" / "tensorrt"


def import_tensorrt() -> ModuleType:
    """The tensorrt module, or EngineError saying how to get it."""
    try:
        import tensorrt
    except ImportError as exc:
        raise EngineError(
            "tensorrt engine: the tensorrt Python package is not importable here ("
            f"{exc}); install TensorRT for this GPU (pip install tensorrt, or JetPack on Jetson) or "
            "choose engine 'onnxruntime'"
        ) from exc
    return tensorrt


def engine_cache_key(gpu_name: str, tensorrt_version: str, onnx_sha256: str, fp16: bool) -> str:
    """16 hex digits naming a plan built for this GPU, TensorRT version, graph and precision."""
    identity = json.dumps(
        {"gpu": gpu_name, "tensorrt": tensorrt_version, "onnx": onnx_sha256, "fp16": fp16}, sort_keys=True
    )
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def cached_plan(
    cache_dir: Path, part: str, key: str, build: Callable[[], bytes], force: bool, load: Callable[[bytes], Any]
) -> Any:
    """Load `cache_dir/<part>-<key>.plan` with `load`, or build (and store) it when absent, forced or unloadable.

    `build` returns a serialised plan; `load` turns plan bytes into an engine and raises on a corrupt plan.
    """
    path = cache_dir / f"{part}-{key}.plan"
    if path.is_file() and not force:
        try:
            return load(path.read_bytes())
        except Exception as exc:  # TensorRT reports a bad plan with its own runtime errors
            log.warning("tensorrt engine: cached plan %s does not load (%s); rebuilding", path, exc)
    reason = "forced (force_engine_update)" if force else "no plan for this GPU, TensorRT version and graph"
    log.info("tensorrt engine: building %s: %s", path.name, reason)
    plan = build()
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".plan.partial")
    partial.write_bytes(plan)
    partial.replace(path)
    return load(plan)


def check_bindings(
    part_name: str, part: PartManifest, engine_inputs: Sequence[str], engine_outputs: Sequence[str]
) -> None:
    """EngineError unless the engine's input and output tensor names are exactly the manifest's."""
    for kind, have, want in (
        ("inputs", engine_inputs, [t.name for t in part.inputs]),
        ("outputs", engine_outputs, [t.name for t in part.outputs]),
    ):
        missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
        if missing or extra:
            raise EngineError(
                f"tensorrt engine: {part_name} engine {kind} do not match manifest.json: missing "
                f"{missing}, unexpected {extra}; the plan or the export is stale: rerun with "
                "force_engine_update=True or export again"
            )


class TensorRTEngine(ExportedGraphEngine):
    """Args:
    model_path: the export directory written by `embody4d export`.
    steps: must equal the exported steps if given.
    cache_dir: where plans are cached (default ~/.cache/embody4d/tensorrt).
    force_engine_update: rebuild every plan even if a matching one is cached.
    fp16: build with FP16 kernels where the GPU has fast FP16 (inputs and outputs stay float32).
    device: CUDA device index.
    """

    name = "tensorrt"

    def __init__(
        self,
        model_path: str | Path | None = None,
        steps: int | None = None,
        cache_dir: str | Path | None = None,
        force_engine_update: bool = False,
        fp16: bool = True,
        device: int = 0,
    ) -> None:
        trt = import_tensorrt()
        import torch

        if not torch.cuda.is_available():
            raise EngineError(
                "tensorrt engine: no CUDA device is visible to torch (bindings live in CUDA memory); "
                "choose engine 'onnxruntime' on this machine"
            )
        super().__init__(model_path, steps)
        self._torch, self._trt = torch, trt
        self.device = torch.device("cuda", device)
        self.stream = torch.cuda.Stream(self.device)
        self.gpu_name = torch.cuda.get_device_name(self.device)
        self._logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(self._logger)
        cache = Path(cache_dir) if cache_dir else DEFAULT_CACHE
        self.engines, self.contexts, self.bindings = {}, {}, {}
        for name, part in self.manifest.parts.items():
            key = engine_cache_key(self.gpu_name, trt.__version__, part.sha256, fp16)
            engine = cached_plan(
                cache,
                name,
                key,
                functools.partial(self._build, part, fp16),
                force_engine_update,
                lambda plan: self._deserialize(runtime, plan),
            )
            names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
            inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
            check_bindings(name, part, inputs, [n for n in names if n not in inputs])
            context = engine.create_execution_context()
            bindings = {}
            for spec in [*part.inputs, *part.outputs]:
                bindings[spec.name] = torch.empty(spec.shape, dtype=getattr(torch, spec.dtype), device=self.device)
                context.set_tensor_address(spec.name, bindings[spec.name].data_ptr())
            self.engines[name], self.contexts[name], self.bindings[name] = engine, context, bindings
        log.info(
            "tensorrt engine: %s on %s (TensorRT %s, fp16=%s)", self.export_dir, self.gpu_name, trt.__version__, fp16
        )

    def _build(self, part: PartManifest, fp16: bool) -> bytes:
        trt = self._trt
        builder = trt.Builder(self._logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse_from_file(str(self.export_dir / part.file)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise EngineError(f"tensorrt engine: cannot parse {self.export_dir / part.file}: {errors}")
        config = builder.create_builder_config()
        if fp16 and builder.platform_has_fast_fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise EngineError(f"tensorrt engine: building {part.file} failed (see the TensorRT log above)")
        return bytes(plan)

    @staticmethod
    def _deserialize(runtime: Any, plan: bytes) -> Any:
        engine = runtime.deserialize_cuda_engine(plan)
        if engine is None:
            raise EngineError("plan does not deserialise (built by another TensorRT version or truncated)")
        return engine

    def run_part(self, part: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        bindings = self.bindings[part]
        with self._torch.cuda.stream(self.stream):
            for name, value in feeds.items():
                bindings[name].copy_(self._torch.from_numpy(np.ascontiguousarray(value)), non_blocking=False)
            if not self.contexts[part].execute_async_v3(self.stream.cuda_stream):
                raise EngineError(f"tensorrt engine: {part} failed to run")
        self.stream.synchronize()
        return [bindings[t.name].cpu().numpy() for t in self.manifest.parts[part].outputs]

    def close(self) -> None:
        self.contexts.clear()
        self.engines.clear()
        self.bindings.clear()
