"""What the network sees of the warp, and what its output keeps of it (preset `pipeline` settings).

`condition_fill` — how the holes of the warped frames look to the network:
    "none"      holes stay 0 (black), the conditioning TrajectoryCrafter was trained with (the 5b preset);
    "pushpull"  holes pre-filled by `model.inpaint.fill_holes` (depth-aware push-pull, from the far side of each
                disocclusion), so a small network starts from a plausible background and learns the correction
                (the tiny preset);
    "telea"     holes pre-filled by OpenCV Telea.
`keep_warped_pixels` — every pixel the warp produced (its mask) is copied into the output exactly and the network
    supplies the holes: the copy route carried out in pixel space, as the classical fills do. On the validation
    split this scored higher than blending by the soft coverage (which also hands the few pixels next to a hole to the
    network): SSIM 0.875 vs 0.869, see docs/EVALUATION.md.

Every engine that runs the network (torch, onnxruntime, tensorrt) and the trainer's batches use these two functions,
so training and deployment condition the network identically.
"""

from __future__ import annotations

import numpy as np

from model.inpaint import METHODS, fill_holes

CONDITION_FILLS = ("none", *METHODS)


def check_condition_fill(fill: str) -> None:
    if fill not in CONDITION_FILLS:
        raise ValueError(f"condition_fill must be one of {CONDITION_FILLS}, got {fill!r}")


def conditioning_frames(
    warped_rgb: np.ndarray, warp_mask: np.ndarray, warped_depth: np.ndarray | None, fill: str
) -> np.ndarray:
    """The warped clip as the network sees it.

    Args:
        warped_rgb: (T, h, w, 3) uint8; warp_mask: (T, h, w) bool, True where the warp landed;
        warped_depth: (T, h, w) metres of the warped surfaces, or None (the fill is then not depth-aware);
        fill: one of CONDITION_FILLS.
    Returns:
        (T, h, w, 3) uint8: holes 0 for "none", else filled.
    """
    check_condition_fill(fill)
    if fill == "none":
        return np.where(warp_mask[..., None], warped_rgb, 0).astype(np.uint8)
    depths = warped_depth if warped_depth is not None else [None] * len(warped_rgb)
    return np.stack(
        [fill_holes(frame, mask, depth=depth, method=fill) for frame, mask, depth in zip(warped_rgb, warp_mask, depths)]
    )


def keep_warped(generated: np.ndarray, warped_rgb: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """generated * (1 - c) + warped * c with c = weight (T, h, w) in [0, 1] (the engines pass the warp mask);
    frames (T, h, w, 3) uint8 -> uint8."""
    c = np.clip(weight, 0.0, 1.0)[..., None].astype(np.float32)
    blended = generated.astype(np.float32) * (1.0 - c) + warped_rgb.astype(np.float32) * c
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)
