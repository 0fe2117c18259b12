"""`embody4d contact-sheet`: a PNG grid of samples across morphologies: source, target and their masks.

From a dataset directory (``--data DIR``) it picks random samples, one per robot first; without one it renders a
fresh plausible sample of each of ``--num-samples`` robots (all splits, so held-out morphologies show too).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import warnings
from typing import Any

import cv2
import numpy as np

from .synth import add_config_arguments, config_from_args, option


@dataclasses.dataclass
class ContactSheetConfig:
    """Options of `embody4d contact-sheet` (each field is a ``--flag``)."""

    out: str = option("outputs/contact_sheet.png", "PNG to write")
    data: str = option("", "dataset directory to pick samples from; empty = render fresh ones")
    num_samples: int = option(16, "samples (robots) on the sheet")
    seed: int = option(0, "which samples / which renders")
    num_frames: int = option(5, "frames per freshly rendered clip (the middle one is shown)")
    height: int = option(240, "render height")
    width: int = option(320, "render width")
    tile_height: int = option(120, "height of each image on the sheet")
    columns: int = option(2, "samples per row of the sheet")


def _pick_from_dataset(path: str, count: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Random samples of a dataset, covering as many robots as possible (one per robot, then any)."""
    from .data import open_dataset

    ds = open_dataset(path)
    if len(ds) == 0:
        raise ValueError(f"{path} holds no finished shard yet")
    order = rng.permutation(len(ds))
    chosen, robots = [], set()
    for i in order:  # reading meta means decoding the sample; stop once enough distinct robots are found
        sample = ds[int(i)]
        if sample["meta"]["robot"] not in robots:
            robots.add(sample["meta"]["robot"])
            chosen.append(sample)
        if len(chosen) == count:
            break
    return chosen


def _render_fresh(config: ContactSheetConfig, rng: np.random.Generator) -> list[dict[str, Any]]:
    """One plausible fresh sample for each of up to ``num_samples`` robots spread over the whole library; a robot
    with no plausible render in 6 attempts is left out (with a warning) and the next one taken."""
    from .sim import available_robots, render_two_view_clip
    from .synth import PlausibilityConfig, plausibility_failure

    names = available_robots()
    samples = []
    for robot in (names[int(i)] for i in rng.permutation(len(names))):
        reasons = []
        for _ in range(6):
            sample = render_two_view_clip(
                robot,
                num_frames=config.num_frames,
                height=config.height,
                width=config.width,
                seed=int(rng.integers(2**31)),
            )
            reasons.append(plausibility_failure(sample, PlausibilityConfig()))
            if reasons[-1] is None:
                samples.append(sample)
                break
        else:
            warnings.warn(f"robot '{robot}' left off the sheet: no plausible render in 6 attempts ({reasons})")
        if len(samples) == config.num_samples:
            break
    return sorted(samples, key=lambda s: s["meta"]["robot"])


def _tile(image: np.ndarray, height: int) -> np.ndarray:
    width = round(image.shape[1] * height / image.shape[0])
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def _mask_view(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The mask in colour over a darkened copy of the image."""
    out = (rgb.astype(np.float32) * 0.25).astype(np.uint8)
    out[mask > 0] = (0.4 * rgb[mask > 0] + 0.6 * np.array([255, 80, 40])).astype(np.uint8)
    return out


def sample_block(sample: dict[str, Any], tile_height: int) -> np.ndarray:
    """One sample as a row of four tiles (middle frame): source, target, source mask, target mask; (h, 4w, 3)."""
    t = len(sample["src_rgb"]) // 2
    tiles = [
        sample["src_rgb"][t],
        sample["tgt_rgb"][t],
        _mask_view(sample["src_rgb"][t], sample["src_mask"][t]),
        _mask_view(sample["tgt_rgb"][t], sample["tgt_mask"][t]),
    ]
    block = np.concatenate([_tile(x, tile_height) for x in tiles], axis=1)
    from .sim import robot_names

    held_out = "  (test split)" if sample["meta"]["robot"] in robot_names("test") else ""
    label = f"{sample['meta']['robot']}{held_out}  {sample['meta'].get('view_angle_deg', float('nan')):.0f} deg"
    for colour, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(block, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, colour, thickness, cv2.LINE_AA)
    return block


HEADER_PX = 18


def contact_sheet(samples: list[dict[str, Any]], tile_height: int = 120, columns: int = 2) -> np.ndarray:
    """Grid (H, W, 3) uint8: a header naming the tiles, then sample blocks, ``columns`` per row, 2-pixel gutters."""
    blocks = [sample_block(s, tile_height) for s in samples]
    h, w = blocks[0].shape[:2]
    rows = -(-len(blocks) // columns)
    sheet = np.full((HEADER_PX + rows * (h + 2), columns * (w + 2), 3), 255, np.uint8)
    for c in range(columns):
        for j, name in enumerate(("source", "target", "source mask", "target mask")):
            cv2.putText(
                sheet,
                name,
                (c * (w + 2) + j * w // 4 + 4, HEADER_PX - 5),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.45,
                (0, 0, 0),
                1,
                cv2.LINE_AA,
            )
    for i, block in enumerate(blocks):
        r, c = divmod(i, columns)
        top = HEADER_PX + r * (h + 2)
        sheet[top : top + h, c * (w + 2) : c * (w + 2) + w] = block
    return sheet


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, ContactSheetConfig)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(ContactSheetConfig, args)
    rng = np.random.default_rng(config.seed)
    samples = _pick_from_dataset(config.data, config.num_samples, rng) if config.data else _render_fresh(config, rng)
    sheet = contact_sheet(samples, config.tile_height, config.columns)
    os.makedirs(os.path.dirname(os.path.abspath(config.out)), exist_ok=True)
    if not cv2.imwrite(config.out, sheet[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"could not write {config.out}; check the directory and that the name ends in .png")
    print(
        f"wrote {config.out} ({sheet.shape[1]}x{sheet.shape[0]}, {len(samples)} samples: "
        f"{', '.join(s['meta']['robot'] for s in samples)})"
    )
    return 0
