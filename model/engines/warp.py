"""The `warp` engine: geometry plus classical hole filling, no network (always available, camera rate on CPU)."""
from __future__ import annotations

import numpy as np

from model.engines.base import Engine, EngineError, GenerationRequest
from model.inpaint import METHODS, fill_holes


class WarpEngine(Engine):
    """Returns the warped frames with their holes filled by `model.inpaint.fill_holes`.

    Args:
        inpaint: "pushpull" (default, a few ms per 480x640 frame) or "telea" (cv2.inpaint, the evaluator's baseline).
    """

    name = "warp"

    def __init__(self, inpaint: str = "pushpull") -> None:
        if inpaint not in METHODS:
            raise EngineError(f"warp engine: inpaint must be one of {METHODS}, got {inpaint!r}")
        self.inpaint = inpaint

    def generate(self, request: GenerationRequest) -> np.ndarray:
        """(T, h, w, 3) uint8: each warped frame with the pixels outside `warp_mask` filled."""
        if request.warped_rgb.dtype != np.uint8:
            raise EngineError(f"warped_rgb must be uint8, got {request.warped_rgb.dtype}")
        frames = [
            fill_holes(warped, mask, method=self.inpaint) for warped, mask in zip(request.warped_rgb, request.warp_mask)
        ]
        return np.stack(frames)
