"""Depth sources: sensor depth as recorded on the wire, or a monocular estimator on the colour image.

Inside the code depth is (H, W) float32 metres with 0 meaning invalid (docs/DESIGN.md conventions).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

SENSOR = "sensor"


class DepthError(RuntimeError):
    """A depth source cannot be created or used; the message says what to do."""


def depth_from_wire(array: np.ndarray, encoding: str) -> np.ndarray:
    """Sensor depth in its wire encoding -> float32 metres, NaN/inf/negative -> 0.

    array: (..., H, W) uint16 millimetres for 16UC1/mono16, float32 metres for 32FC1.
    """
    if encoding in ("16UC1", "mono16"):
        return np.asarray(array, dtype=np.uint16).astype(np.float32) * np.float32(1e-3)
    if encoding == "32FC1":
        depth = np.asarray(array, dtype=np.float32)
        return np.where(np.isfinite(depth) & (depth > 0), depth, np.float32(0.0))
    raise DepthError(f"depth encoding {encoding!r} is not supported; use 16UC1 (mm) or 32FC1 (m)")


class DepthEstimator(ABC):
    """Monocular depth: colour frames in, metric (or median-scaled) depth out."""

    name: str = "estimator"

    @abstractmethod
    def estimate(self, rgb: np.ndarray) -> np.ndarray:
        """(T, H, W, 3) uint8 RGB -> (T, H, W) float32 metres, 0 where unknown."""


class DepthAnythingV2(DepthEstimator):
    """Depth-Anything-V2 through transformers, loaded from a local directory (nothing is downloaded).

    Metric checkpoints (config depth_estimation_type == "metric", e.g. Depth-Anything-V2-Metric-Indoor-Small-hf)
    give metres. Relative checkpoints give affine-invariant disparity; it is inverted and scaled so that the
    median depth is `relative_median_m`. An orbit around the automatic pivot is scale-free, so relative depth
    serves yaw/pitch viewpoints; forward_m and pose targets need a metric checkpoint.
    """

    name = "depth_anything_v2"

    def __init__(self, model_dir: str | Path, device: str = "cpu", relative_median_m: float = 1.0) -> None:
        # the directory first: a wrong depth.model_path is reported the same with or without torch installed
        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise DepthError(
                f"depth.model_path {str(model_dir)!r} is not a transformers model directory (no config.json); download "
                "e.g. depth-anything/Depth-Anything-V2-Small-hf on a connected machine and copy the directory here"
            )
        try:
            import torch
            from transformers import AutoImageProcessor, AutoModelForDepthEstimation
        except ImportError as exc:
            raise DepthError(
                f"the depth estimator needs torch and transformers ({exc}); pip install -e '.[torch]'"
            ) from exc
        self._torch = torch
        self.device = torch.device(device)
        self.processor = AutoImageProcessor.from_pretrained(model_dir, local_files_only=True)
        self.model = (
            AutoModelForDepthEstimation.from_pretrained(model_dir, local_files_only=True).to(self.device).eval()
        )
        self.metric = getattr(self.model.config, "depth_estimation_type", "relative") == "metric"
        self.relative_median_m = float(relative_median_m)

    def estimate(self, rgb: np.ndarray) -> np.ndarray:
        torch = self._torch
        rgb = np.asarray(rgb)
        if rgb.ndim != 4 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
            raise DepthError(f"rgb must be (T, H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
        height, width = rgb.shape[1:3]
        inputs = self.processor(images=list(rgb), return_tensors="pt").to(self.device)
        with torch.inference_mode():
            predicted = self.model(**inputs).predicted_depth  # (T, h', w') at the network's resolution
            predicted = torch.nn.functional.interpolate(
                predicted[:, None].float(), size=(height, width), mode="bilinear", align_corners=False
            )[:, 0]
        out = predicted.cpu().numpy().astype(np.float32)
        return out if self.metric else np.stack([self._disparity_to_depth(d) for d in out])

    def _disparity_to_depth(self, disparity: np.ndarray) -> np.ndarray:
        valid = np.isfinite(disparity) & (disparity > 1e-6)
        if not valid.any():
            return np.zeros_like(disparity)
        depth = np.zeros_like(disparity)
        depth[valid] = 1.0 / disparity[valid]
        depth[valid] *= self.relative_median_m / np.median(depth[valid])
        return depth


ESTIMATORS = {"depth_anything_v2": DepthAnythingV2}


def create_depth_estimator(source: str, model_path: str = "", device: str = "cpu") -> DepthEstimator | None:
    """None for sensor depth, else the named estimator loaded from `model_path`."""
    if source == SENSOR:
        return None
    if source not in ESTIMATORS:
        raise DepthError(f"unknown depth source {source!r}; choose {SENSOR!r} or one of {sorted(ESTIMATORS)}")
    if not model_path:
        raise DepthError(
            f"depth.source={source} needs depth.model_path, a local directory with the model's config.json and weights"
        )
    return ESTIMATORS[source](model_path, device=device)
