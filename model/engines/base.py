"""The Engine contract shared by the node, `augment-bag`, the demo and the evaluator (docs/DESIGN.md contract 3).

An engine turns source frames plus their geometric warp into the target view. Geometry (depth, poses, the warp
itself) happens before the engine is called, so every engine sees the same inputs and can be swapped freely.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np


class EngineError(RuntimeError):
    """An engine could not be created or could not run; the message says what to do."""


@dataclass
class GenerationRequest:
    """Inputs of one generation: a clip of T frames (T = 1 in image mode).

    Shapes (source resolution H×W, target resolution h×w):
        source_rgb:         (T, H, W, 3) uint8, the observed frames.
        warped_rgb:         (T, h, w, 3) uint8, the source warped into the target camera (holes are 0).
        warp_mask:          (T, h, w) bool, True where a source surface landed.
        coverage:           (T, h, w) float32 in [0, 1], soft confidence of the warp.
        warped_depth:       (T, h, w) float32 metres of the warped surfaces (0 in holes) or None; lets hole filling
                            prefer the background side of a disocclusion.
        source_interaction: (T, H, W) float32 in [0, 1] or None, robot-and-object region in the source view.
        target_interaction: (T, h, w) float32 in [0, 1] or None, the same region in the target view.
        caption:            optional text conditioning.
        seed:               noise seed for generative engines (same seed, same output).
    """

    source_rgb: np.ndarray
    warped_rgb: np.ndarray
    warp_mask: np.ndarray
    coverage: np.ndarray
    warped_depth: np.ndarray | None = None
    source_interaction: np.ndarray | None = None
    target_interaction: np.ndarray | None = None
    caption: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.warp_mask.ndim != 3:
            raise EngineError(f"warp_mask must be (T, h, w), got shape {self.warp_mask.shape}")
        t, h, w = self.warp_mask.shape
        checks = {
            "source_rgb": (self.source_rgb, 4),
            "warped_rgb": (self.warped_rgb, 4),
            "coverage": (self.coverage, 3),
        }
        for name, (array, ndim) in checks.items():
            if array.ndim != ndim or array.shape[0] != t:
                raise EngineError(f"{name} must have {ndim} dims and T={t} frames, got shape {array.shape}")
        if self.warped_rgb.shape[1:3] != (h, w) or self.coverage.shape[1:] != (h, w):
            raise EngineError(
                f"warped_rgb {self.warped_rgb.shape} and coverage {self.coverage.shape} must match warp_mask "
                f"(T, h, w) = {self.warp_mask.shape}"
            )
        if self.warped_depth is not None and self.warped_depth.shape != (t, h, w):
            raise EngineError(f"warped_depth must be {(t, h, w)}, got {self.warped_depth.shape}")
        if self.source_interaction is not None and self.source_interaction.shape != self.source_rgb.shape[:3]:
            raise EngineError(
                f"source_interaction must be {self.source_rgb.shape[:3]}, got {self.source_interaction.shape}"
            )
        if self.target_interaction is not None and self.target_interaction.shape != (t, h, w):
            raise EngineError(f"target_interaction must be {(t, h, w)}, got {self.target_interaction.shape}")

    def frames(self, start: int, stop: int) -> GenerationRequest:
        """The request for frames [start, stop) (e.g. one frame, as the node's image mode sends it)."""
        return replace(
            self,
            **{
                f.name: getattr(self, f.name)[start:stop]
                for f in fields(self)
                if isinstance(getattr(self, f.name), np.ndarray)
            },
        )

    @property
    def num_frames(self) -> int:
        return int(self.warp_mask.shape[0])

    @property
    def target_hw(self) -> tuple[int, int]:
        return int(self.warp_mask.shape[1]), int(self.warp_mask.shape[2])


class Engine(ABC):
    """Generates the virtual view. Subclasses set `name` and implement `generate`."""

    name: str = "engine"

    @abstractmethod
    def generate(self, request: GenerationRequest) -> np.ndarray:
        """Return the virtual frames, (T, h, w, 3) uint8, one per request frame."""

    def close(self) -> None:
        """Release resources (GPU memory, sessions). Default: nothing to release."""


@dataclass(frozen=True)
class EngineEntry:
    """One engine in the registry.

    target: "module:Class", imported on first use so that `warp` never needs torch or onnxruntime.
    fallback_rank: place in the fallback chain; an engine that cannot start falls back to the engines of higher rank
        (fastest first, `warp`, which needs nothing, last).
    model_path_kind: what the engine's `model_path` option names (engines of one kind can share it), or None.
    """

    target: str
    fallback_rank: int
    model_path_kind: str | None = None


# The one registry: everything else (available_engines, fallback_order, model-path kinds) is derived from it.
_REGISTRY: dict[str, EngineEntry] = {
    "tensorrt": EngineEntry("model.engines.tensorrt_engine:TensorRTEngine", 10, "export directory"),
    "onnxruntime": EngineEntry("model.engines.onnxruntime_engine:OnnxRuntimeEngine", 20, "export directory"),
    "torch": EngineEntry("model.engines.torch_engine:TorchEngine", 30, "model directory"),
    "warp": EngineEntry("model.engines.warp:WarpEngine", 100),
}
# where a newly registered engine joins the fallback chain unless told: after the network engines, before warp
DEFAULT_FALLBACK_RANK = 50


def register_engine(
    name: str, target: str, fallback_rank: int | None = None, model_path_kind: str | None = None
) -> None:
    """Register an engine class by import path ("module:Class"); it joins `fallback_order` at `fallback_rank`.

    Re-registering a name replaces its class and keeps its rank and model-path kind unless new ones are given.
    """
    previous = _REGISTRY.get(name)
    if fallback_rank is None:
        fallback_rank = previous.fallback_rank if previous else DEFAULT_FALLBACK_RANK
    if model_path_kind is None and previous is not None:
        model_path_kind = previous.model_path_kind
    _REGISTRY[name] = EngineEntry(target, fallback_rank, model_path_kind)


def engine_entry(name: str) -> EngineEntry:
    """The registry entry of engine `name`; EngineError naming the choices if there is none."""
    if name not in _REGISTRY:
        raise EngineError(f"unknown engine {name!r}; choose one of {available_engines()}")
    return _REGISTRY[name]


def available_engines() -> list[str]:
    return sorted(_REGISTRY)


def fallback_order() -> list[str]:
    """Every registered engine in fallback order (rank, then name)."""
    return sorted(_REGISTRY, key=lambda name: (_REGISTRY[name].fallback_rank, name))


def engine_class(name: str) -> type[Engine]:
    """Import and return engine `name`'s class; EngineError when its module needs a package that is not installed."""
    module_name, class_name = engine_entry(name).target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EngineError(
            f"engine {name!r} needs a package that is not installed ({exc}); install the matching "
            "extra, e.g. pip install -e '.[torch]'"
        ) from exc
    return getattr(module, class_name)


def create_engine(name: str, **options: Any) -> Engine:
    """Create an engine by name; options go to its constructor (e.g. `model_path`)."""
    return engine_class(name)(**options)
