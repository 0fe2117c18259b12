"""The `onnxruntime` engine: the exported graphs (embody4d export) in onnxruntime, CUDA where present, else CPU."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from model.engines.base import EngineError
from model.engines.exported import ExportedGraphEngine

log = logging.getLogger(__name__)


class OnnxRuntimeEngine(ExportedGraphEngine):
    """Args:
    model_path: the export directory written by `embody4d export` (manifest.json + graphs).
    steps: must equal the exported steps if given.
    providers: onnxruntime execution providers in order of preference; None: CUDA if available, then CPU.
    num_threads: intra-op threads per session (None: onnxruntime's default, all cores).
    spin: let idle intra-op threads spin-wait for work. Off by default: spinning threads keep the cores busy
        between runs and starve the rest of the process (torch, the warp kernel, ROS callbacks); measured here
        they slowed a torch model interleaved with this engine several-fold.
    """

    name = "onnxruntime"

    def __init__(
        self,
        model_path: str | Path | None = None,
        steps: int | None = None,
        providers: list[str] | None = None,
        num_threads: int | None = None,
        spin: bool = False,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise EngineError(
                "onnxruntime engine: onnxruntime is not installed: pip install onnxruntime "
                "(or onnxruntime-gpu for CUDA)"
            ) from exc
        super().__init__(model_path, steps)
        available = ort.get_available_providers()
        wanted = providers or [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        missing = [p for p in wanted if p not in available]
        if missing:
            raise EngineError(
                f"onnxruntime engine: execution providers {missing} are not available here (available: {available})"
            )
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        if num_threads:
            options.intra_op_num_threads = num_threads
            options.inter_op_num_threads = 1
        self.sessions = {}
        for name, part in self.manifest.parts.items():
            try:
                session = ort.InferenceSession(str(self.export_dir / part.file), options, providers=wanted)
            except Exception as exc:  # onnxruntime raises its own exception types for corrupt or foreign graphs
                raise EngineError(
                    f"onnxruntime engine: cannot load {self.export_dir / part.file}: {exc}; export again"
                ) from exc
            names = sorted(i.name for i in session.get_inputs())
            if names != sorted(t.name for t in part.inputs):
                raise EngineError(
                    f"onnxruntime engine: {part.file} has inputs {names}, the manifest lists "
                    f"{sorted(t.name for t in part.inputs)}: the directory is inconsistent, export again"
                )
            self.sessions[name] = session
        self.providers = self.sessions["denoiser"].get_providers()
        log.info(
            "onnxruntime engine: %s (%s mode %dx%d, %d steps) on %s",
            self.export_dir,
            self.manifest.mode,
            self.manifest.height,
            self.manifest.width,
            self.manifest.steps,
            self.providers,
        )

    def run_part(self, part: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.sessions[part].run(None, feeds)

    def close(self) -> None:
        self.sessions.clear()
