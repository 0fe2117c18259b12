"""A tiny analytic two-view dataset in the on-disk format (tests and benchmarks without MuJoCo).

The scene: a textured wall at 2 m and a moving textured "robot" panel at 1.2 m in front of it, seen by a source
camera and by a target camera shifted sideways. Both views are ray-cast exactly, so the target view is true ground
truth for the warp (disocclusions beside the panel included).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from offline_training.data import ARRAY_SCHEMA, FORMAT_NAME, FORMAT_VERSION, ShardWriter, write_json_atomic

WALL_M, PANEL_M = 2.0, 1.2


def _texture(x: np.ndarray, y: np.ndarray, phase: float) -> np.ndarray:
    """Smooth colour pattern of world coordinates (metres) -> (..., 3) uint8."""
    channels = [np.sin(9 * x + phase) * np.cos(7 * y), np.sin(13 * y - phase), np.cos(11 * (x + y) + 2 * phase)]
    return (127.5 + 110 * np.stack(channels, -1)).astype(np.uint8)


def _render(height: int, width: int, K: np.ndarray, centre_x: float, panel_x: float) -> tuple[np.ndarray, ...]:
    """rgb (H, W, 3), depth (H, W), mask (H, W) of the scene from a camera at (centre_x, 0, 0) looking along +z."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    dx, dy = (u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1]
    px, py = centre_x + PANEL_M * dx, PANEL_M * dy
    panel = (np.abs(px - panel_x) < 0.25) & (np.abs(py) < 0.3)
    wx, wy = centre_x + WALL_M * dx, WALL_M * dy
    rgb = np.where(panel[..., None], _texture(px - panel_x, py, 1.0), _texture(wx, wy, 0.0))
    depth = np.where(panel, PANEL_M, WALL_M).astype(np.float32)
    return rgb.astype(np.uint8), depth, panel.astype(np.uint8)


def toy_sample(index: int, num_frames: int, height: int, width: int, split: str = "train") -> dict[str, Any]:
    """One contract-6 sample; the baseline and the panel's motion depend on `index`."""
    rng = np.random.default_rng(index)
    f = 0.9 * width
    K = np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]])
    baseline = float(rng.uniform(0.08, 0.15)) * (1 if index % 2 else -1)
    start, speed = rng.uniform(-0.1, 0.1), rng.uniform(-0.02, 0.02)
    views: dict[str, list[tuple[np.ndarray, ...]]] = {"src": [], "tgt": []}
    for t in range(num_frames):
        for view, centre in (("src", 0.0), ("tgt", baseline)):
            views[view].append(_render(height, width, K, centre, start + speed * t))
    T = np.eye(4)
    T[0, 3] = -baseline  # source point -> target camera frame
    sample: dict[str, Any] = {
        "K_src": K,
        "K_tgt": K.copy(),
        "T_tgt_src": np.repeat(T[None], num_frames, 0),
        "caption": "a robot panel in front of a wall",
        "meta": {"robot": "toy-panel", "scene": "toy-wall", "seed": index, "split": split, "index": index},
    }
    for view, frames in views.items():
        rgb, depth, mask = (np.stack(x) for x in zip(*frames))
        sample.update({f"{view}_rgb": rgb, f"{view}_depth": depth, f"{view}_mask": mask})
    return sample


@dataclasses.dataclass
class ToyDataset:
    """Where and what to write; `write()` returns the directory."""

    out: str
    num_samples: int = 2
    num_frames: int = 5
    height: int = 32
    width: int = 48
    split: str = "train"
    first_index: int = 0

    def write(self) -> str:
        with ShardWriter(self.out, 0) as writer:
            for i in range(self.first_index, self.first_index + self.num_samples):
                writer.add(f"{i:08d}", toy_sample(i, self.num_frames, self.height, self.width, self.split))
            writer.stats = {"samples": self.num_samples, "rejections": {}}
        write_json_atomic(
            f"{self.out}/dataset.json",
            {
                "format": FORMAT_NAME,
                "version": FORMAT_VERSION,
                "split": self.split,
                "seed": self.first_index,
                "num_samples": self.num_samples,
                "samples_per_shard": self.num_samples,
                "num_shards": 1,
                "num_frames": self.num_frames,
                "height": self.height,
                "width": self.width,
                "robots": ["toy-panel"],
                "schema": {name: {"dtype": dt, "shape": shape} for name, (dt, shape) in ARRAY_SCHEMA.items()},
            },
        )
        return self.out


def toy_preset(out: str, height: int = 32, width: int = 48, base: str = "tiny") -> str:
    """A preset JSON like `base` at a small resolution with a 5-frame window (fast tests); returns its path."""
    import json

    from model.presets import load_preset

    preset = load_preset(base)
    preset["pipeline"].update(height=height, width=width, window_frames=5, overlap_latent_frames=1)
    with open(out, "w") as f:
        json.dump(preset, f)
    return out
