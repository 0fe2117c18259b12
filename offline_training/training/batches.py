"""Contract-6 samples -> network-form training batches, per stage (paper section 4 and appendix C.4).

    vae:                 target = the target clip (the VAE learns to reconstruct robot videos)
    estimator, stage1:   two-view compositional data: source = src clip, warped = src warped into the target camera
                         (the node's warp: `target_view`), coverage = soft warp confidence (0 outside the warp
                         mask), target = tgt clip, interaction = tgt robot-and-object mask, source_interaction = src
                         mask
    stage2:              pseudo-4D pair from the source view (offline_training.pseudo4d.pair_from_sample): warped =
                         the forward-backward warp, target = source = the src clip, both masks = the src mask

The source depth the condition is warped from is drawn per item from a mix of depth models (`depth_mix`,
model.depth_sensor: the simulator's clean depth, a RealSense-like stereo camera's, a monocular estimate's), so the
network learns to repair what real depth does to the warp; each sample's sensor-like depth is seeded by the run's
seed and the sample index (the sample's stored `src_depth_sensor` when it was synthesised with that model), and a
mono estimate can be aligned to the robot's metric depth as the runtime aligns it (`depth_align`).

Every item is a deterministic function of (seed, sample index, epoch): the clip window, the depth model and the
pseudo-4D view are drawn from generators seeded with them, so a resumed run sees exactly the batches of an
uninterrupted one.
Shapes: clips (3, T, H, W) in [-1, 1], masks (1, T, H, W) in [0, 1], T = `frames` (4k+1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from model.clips import ClipRule
from model.conditioning import check_condition_fill, conditioning_frames
from model.depth_align import DepthAlignmentError, fit_inverse_depth_affine, interior_anchors
from model.depth_sensor import DEPTH_MODELS, sensor_depth, warp_settings
from model.geometry import DEFAULT_SETTINGS, WarpSettings
from model.virtual_view import VirtualView, prepare_virtual_view
from offline_training.pseudo4d import pair_from_sample
from offline_training.training.stages import STAGES


def video_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (3, T, H, W) float32 in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(3, 0, 1, 2).float() / 127.5 - 1.0


def mask_tensor(mask: np.ndarray) -> torch.Tensor:
    """(T, H, W) in [0, 1] (any dtype) -> (1, T, H, W) float32."""
    return torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None]


# how a mono estimate is scaled before the warp: not at all, or aligned to the robot's metric depth (model.depth_align)
DEPTH_ALIGNS = ("none", "robot")


def parse_depth_mix(text: str) -> dict[str, float]:
    """'clean,stereo,mono' (equal shares) or 'clean:2,stereo:1' (weights) -> {depth model: probability}."""
    weights: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, _, weight = part.partition(":")
        name = name.strip()
        if name not in DEPTH_MODELS:
            raise ValueError(f"depth model {name!r} in {text!r} is not one of {DEPTH_MODELS}")
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"the weight of {name!r} in {text!r} must be a number (NAME:WEIGHT)") from None
        if not value >= 0:
            raise ValueError(f"the weight of {name!r} in {text!r} must be >= 0")
        weights[name] = weights.get(name, 0.0) + value
    total = sum(weights.values())
    if not total > 0:
        raise ValueError(f"the depth mix {text!r} names no depth model with a positive weight; e.g. clean,stereo,mono")
    return {name: w / total for name, w in weights.items() if w > 0}


def source_depth(sample: dict[str, Any], depth_model: str, seed: int, align: str = "none") -> np.ndarray:
    """The sample's source depth (T, H, W) as `depth_model` delivers it: the stored sensor-like depth when the sample
    was synthesised with that model, else generated here with `seed`.

    align "robot": a mono estimate is fitted to the clean depth on the sample's robot pixels (`src_mask`; it also
    holds the objects the robot handles) as the runtime fits it to the robot layer's rendered robot, one fit per clip;
    left as it is when too few robot pixels are visible. Other depth models are never aligned.
    """
    if align not in DEPTH_ALIGNS:
        raise ValueError(f"depth alignment must be one of {DEPTH_ALIGNS}, got {align!r}")
    if depth_model != "clean" and sample["meta"].get("depth_model") == depth_model and "src_depth_sensor" in sample:
        depth = sample["src_depth_sensor"][: len(sample["src_depth"])]  # the clip may be cut shorter
    else:
        depth = sensor_depth(sample["src_depth"], sample["K_src"], depth_model, seed)
    if align == "robot" and depth_model == "mono":
        margin = max(1, round(2 * depth.shape[-1] / 320))
        anchors = interior_anchors(np.where(sample["src_mask"] > 0, sample["src_depth"], 0.0), margin)
        try:
            depth = fit_inverse_depth_affine(depth, anchors).apply(depth)
        except DepthAlignmentError:
            pass  # the robot is (almost) out of view: the estimate stays unaligned, as in the runtime
    return depth


def target_view(sample: dict[str, Any], settings: WarpSettings = DEFAULT_SETTINGS) -> VirtualView:
    """The sample's source clip prepared for its target camera exactly as the node and `augment-bag` prepare a
    virtual view (depth repair, contract-1 warp, warped source mask as the target interaction mask)."""
    return prepare_virtual_view(
        sample["src_rgb"],
        sample["src_depth"],
        sample["K_src"],
        sample["T_tgt_src"],
        out_hw=sample["tgt_rgb"].shape[1:3],
        K_dst=sample["K_tgt"],
        source_interaction=sample["src_mask"],
        caption=sample["caption"],
        settings=settings,
    )


def target_warp(
    sample: dict[str, Any], condition_fill: str = "none", settings: WarpSettings = DEFAULT_SETTINGS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The source clip warped into the target camera: (warped rgb (T, H, W, 3) uint8 as the network sees it (holes
    per `condition_fill`, model.conditioning), mask (T, H, W) bool, coverage (T, H, W) float32, 0 outside the mask)."""
    warp = target_view(sample, settings).warp
    warped = conditioning_frames(warp.image, warp.mask, warp.depth, condition_fill)
    return warped, warp.mask, np.where(warp.mask, warp.coverage, 0.0).astype(np.float32)


class StageClips:
    """The training items of one stage over a dataset: `clips[i, epoch]` -> dict of tensors (no batch axis).

    Args:
        samples: a contract-6 sequence (`open_dataset(path)`).
        stage: one of STAGES.
        frames: clip length (4k+1) cut from each sample at a random start.
        seed: the run's seed.
        height, width: the model's resolution; samples at another resolution are refused.
        condition_fill: how the warped frames' holes look to the network (the model's `pipeline.condition_fill`).
        pseudo4d_fraction: estimator and stage1: the share of items drawn as pseudo-4D pairs instead of two-view
            pairs (the paper's hybrid of monocular and compositional data; 1.0 = pseudo-4D only, its Table 2 baseline).
        depth_mix: the depth models the condition is warped from and their weights, 'clean,stereo,mono' or
            'clean:2,stereo:1' (`parse_depth_mix`); 'clean': the simulator's depth only.
        depth_align: how mono estimates are scaled (`source_depth`).
    """

    def __init__(
        self,
        samples: Sequence[dict[str, Any]],
        stage: str,
        frames: int,
        seed: int,
        height: int,
        width: int,
        condition_fill: str = "none",
        pseudo4d_fraction: float = 0.0,
        depth_mix: str = "clean",
        depth_align: str = "none",
    ) -> None:
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        if not ClipRule().is_valid(frames):
            raise ValueError(f"frames must be 4k+1 (1, 5, 9, 13, ...), got {frames}")
        if len(samples) == 0:
            raise ValueError("the dataset has no samples")
        check_condition_fill(condition_fill)
        if not 0.0 <= pseudo4d_fraction <= 1.0:
            raise ValueError(f"pseudo4d_fraction must be in [0, 1], got {pseudo4d_fraction}")
        self.samples, self.stage, self.frames, self.seed = samples, stage, frames, seed
        self.condition_fill, self.pseudo4d_fraction = condition_fill, pseudo4d_fraction
        self.depth_mix = parse_depth_mix(depth_mix)
        if depth_align not in DEPTH_ALIGNS:
            raise ValueError(f"depth_align must be one of {DEPTH_ALIGNS}, got {depth_align!r}")
        self.depth_align = depth_align
        first = samples[0]
        t, h, w = first["tgt_rgb"].shape[:3]
        if (h, w) != (height, width):
            raise ValueError(
                f"the data is {h}x{w} but the model works at {height}x{width}: synthesise data at the "
                f"model's resolution (embody4d synth --height {height} --width {width}) or pick a preset "
                "that matches"
            )
        if t < frames:
            raise ValueError(f"samples have {t} frames, fewer than the {frames} asked for (--frames)")
        self._warps: dict[tuple[int, str], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def depth_model(self, index: int, epoch: int) -> str:
        """The depth model of item (index, epoch), drawn from `depth_mix` by its own generator (adding a depth mix
        leaves every other draw of the item as it was)."""
        names = list(self.depth_mix)
        if len(names) == 1:
            return names[0]
        rng = np.random.default_rng([self.seed, index, epoch, 0x6465707468])
        return names[int(rng.choice(len(names), p=list(self.depth_mix.values())))]

    def source_depth(self, index: int, depth_model: str) -> np.ndarray:
        """Sample `index`'s whole source depth (T, H, W) as `depth_model` delivers it, seeded by the run's seed and
        the index: every epoch sees the same sensor depth of a sample, so its two-view warp is computed once. Not
        cached (a dataset's depth does not fit in memory); the pseudo-4D items compute it again."""
        return source_depth(self.samples[index], depth_model, self.seed * 1_000_003 + index, self.depth_align)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        index, epoch = key
        rng = np.random.default_rng([self.seed, index, epoch])
        sample = self.samples[index]
        start = int(rng.integers(sample["tgt_rgb"].shape[0] - self.frames + 1))
        window = slice(start, start + self.frames)
        if self.stage == "vae":
            return {"target": video_tensor(sample["tgt_rgb"][window])}
        depth_model = self.depth_model(index, epoch)
        if self.stage == "stage2" or (self.pseudo4d_fraction and rng.random() < self.pseudo4d_fraction):
            clip = {k: sample[k][window] for k in ("src_rgb", "src_mask")}
            clip["src_depth"] = self.source_depth(index, depth_model)[window]
            pair = pair_from_sample({**clip, "K_src": sample["K_src"]}, rng)
            interaction = mask_tensor(pair["interaction_mask"])
            cond_mask = pair["cond_mask"] > 0
            warped = conditioning_frames(pair["cond_rgb"], cond_mask, None, self.condition_fill)
            return {
                "source": video_tensor(pair["target_rgb"]),
                "target": video_tensor(pair["target_rgb"]),
                "warped": video_tensor(warped),
                "coverage": mask_tensor(pair["cond_mask"]),
                "interaction": interaction,
                "source_interaction": interaction,
                "captions": sample["caption"],
            }
        cached = (index, depth_model)
        if cached not in self._warps:  # the two-view warp does not depend on the epoch: once per sample and depth model
            settings = warp_settings(depth_model, sample["K_src"], sample["src_rgb"].shape[2])
            with_depth = {**sample, "src_depth": self.source_depth(index, depth_model)}
            self._warps[cached] = target_warp(with_depth, self.condition_fill, settings)
        warped, _, coverage = self._warps[cached]
        return {
            "source": video_tensor(sample["src_rgb"][window]),
            "target": video_tensor(sample["tgt_rgb"][window]),
            "warped": video_tensor(warped[window]),
            "coverage": mask_tensor(coverage[window]),
            "interaction": mask_tensor(sample["tgt_mask"][window]),
            "source_interaction": mask_tensor(sample["src_mask"][window]),
            "captions": sample["caption"],
        }


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack items into a batch: tensors gain a leading B axis, captions become a list."""
    return {
        key: [item[key] for item in items] if key == "captions" else torch.stack([item[key] for item in items])
        for key in items[0]
    }


def epoch_order(num_samples: int, seed: int, epoch: int) -> np.ndarray:
    """The sample order of one epoch (a seeded permutation)."""
    return np.random.default_rng([seed, epoch, 0x6F72646572]).permutation(num_samples)


def batch_indices(
    step: int, batch_size: int, num_samples: int, seed: int, rank: int = 0, world: int = 1
) -> list[tuple[int, int]]:
    """(sample index, epoch) of this process's part of global batch `step`: the global batch is the next
    batch_size * world items of the concatenated epoch orders, process `rank` takes its contiguous slice."""
    first = (step * world + rank) * batch_size
    out = []
    for position in range(first, first + batch_size):
        epoch, offset = divmod(position, num_samples)
        out.append((int(epoch_order(num_samples, seed, epoch)[offset]), epoch))
    return out


class StepBatches(torch.utils.data.Dataset):
    """This process's part of global batches `first_step`, `first_step + 1`, ... as dataset items, so that a
    `torch.utils.data.DataLoader` (batch_size=None) can build them in worker processes ahead of the training step.
    Item i is `collate` of the clips `batch_indices(first_step + i, ...)` names: the same batches in the same order
    whatever the number of workers, so a resumed run still sees exactly the batches of an uninterrupted one."""

    def __init__(
        self,
        clips: StageClips,
        first_step: int,
        last_step: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        self.clips, self.first_step, self.last_step = clips, first_step, last_step
        self.batch_size, self.seed, self.rank, self.world = batch_size, seed, rank, world

    def __len__(self) -> int:
        return max(self.last_step - self.first_step, 0)

    def __getitem__(self, i: int) -> dict[str, Any]:
        keys = batch_indices(self.first_step + i, self.batch_size, len(self.clips), self.seed, self.rank, self.world)
        return collate([self.clips[key] for key in keys])
