"""Pre- and post-processing shared by every network engine (`torch`, `onnxruntime`, `tensorrt`) and the evaluator.

uint8 frames (T, H, W, 3) and masks (T, H, W) in, network-form tensors (1, C, T, h, w) resized to the model's
resolution and padded to a clip length the VAE accepts; network output (T, 3, h, w) in [-1, 1] back to uint8 at the
request's resolution. Written once so that all engines given the same request start from the same tensors.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from model.conditioning import keep_warped
from model.engines.base import EngineError, GenerationRequest


def check_uint8_frames(request: GenerationRequest) -> None:
    """EngineError unless the request's colour frames are uint8 (the network engines' input range)."""
    for name in ("source_rgb", "warped_rgb"):
        if getattr(request, name).dtype != np.uint8:
            raise EngineError(f"{name} must be uint8, got {getattr(request, name).dtype}")


def masked_coverage(request: GenerationRequest) -> np.ndarray:
    """(T, h, w) float32: the warp's coverage, 0 wherever no source surface landed."""
    return np.where(request.warp_mask, request.coverage, 0.0).astype(np.float32)


def to_network_frames(
    array: np.ndarray, size: tuple[int, ...], dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """(T, H, W[, C]) array -> (1, C, T, h, w) tensor resized to `size` (uint8 RGB -> [-1, 1], masks as given)."""
    x = torch.from_numpy(np.ascontiguousarray(array)).to(device)
    x = (x.permute(0, 3, 1, 2).to(dtype) / 127.5 - 1.0) if x.ndim == 4 else x.unsqueeze(1).to(dtype)
    if tuple(x.shape[-2:]) != size:
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return x.transpose(0, 1).unsqueeze(0)


def pad_to_clip(x: torch.Tensor, frames: int) -> torch.Tensor:
    """Repeat the last frame of (1, C, T, h, w) until it has `frames` frames."""
    return torch.cat([x, x[:, :, -1:].expand(-1, -1, frames - x.shape[2], -1, -1)], dim=2) if frames > x.shape[2] else x


def to_uint8_frames(video: torch.Tensor, target_hw: tuple[int, int]) -> np.ndarray:
    """(T, 3, H, W) in [-1, 1] -> (T, h, w, 3) uint8, resized to target_hw (antialiased bilinear)."""
    if tuple(video.shape[-2:]) != target_hw:
        video = F.interpolate(video, size=target_hw, mode="bilinear", antialias=True, align_corners=False)
    return ((video.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def finish_frames(video: torch.Tensor, request: GenerationRequest, keep_warped_pixels: bool) -> np.ndarray:
    """The engine's output: network video (T, 3, H, W) in [-1, 1] -> (T, h, w, 3) uint8 at the request's resolution,
    with every warped pixel copied back when the model keeps them (`keep_warped_pixels`)."""
    frames_out = to_uint8_frames(video, request.target_hw)
    return keep_warped(frames_out, request.warped_rgb, request.warp_mask) if keep_warped_pixels else frames_out
