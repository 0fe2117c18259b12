"""The video VAE: diffusers' AutoencoderKLCogVideoX plus an exact fast path for single frames.

Shapes: videos are (B, 3, T, H, W) in [-1, 1] with T = 4k + 1; latents are (B, C_lat, k + 1, H / 8, W / 8), already
multiplied by the configured scaling factor (the diffusion space).

The fast path: a CogVideoX causal convolution pads time by repeating the first frame, so on a one-frame input the
3D kernel sees the same frame at every temporal tap and equals a 2D convolution with the kernel summed over time.
This torch CPU build runs every Conv3d through its slow im2col path (`aten::slow_conv3d_forward`), three times the
work of the folded 2D convolution; image mode (one frame) therefore takes the 2D route. Results are identical up to
float rounding (tested).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKLCogVideoX
from diffusers.models.autoencoders.autoencoder_kl_cogvideox import CogVideoXCausalConv3d

from model.clips import ClipRule


def _single_frame_forward(module: CogVideoXCausalConv3d, inputs: torch.Tensor, conv_cache: torch.Tensor | None):
    """Exact 2D evaluation of a causal Conv3d on a one-frame input with no cache; else the original forward."""
    if inputs.shape[2] != 1 or conv_cache is not None or module.conv.stride[0] != 1:
        return CogVideoXCausalConv3d.forward(module, inputs, conv_cache)
    conv = module.conv
    frame = inputs[:, :, 0]
    weight = conv.weight.sum(dim=2)
    if module.pad_mode == "replicate":
        frame = F.pad(
            frame, (module.width_pad, module.width_pad, module.height_pad, module.height_pad), mode="replicate"
        )
        padding: int | tuple[int, int] = 0
    else:
        padding = (module.height_pad, module.width_pad)
    out = F.conv2d(frame, weight, conv.bias, stride=conv.stride[1:], padding=padding, dilation=conv.dilation[1:])
    cache = None if module.pad_mode == "replicate" else inputs.expand(-1, -1, module.time_kernel_size - 1, -1, -1)
    return out.unsqueeze(2), cache


class Embody4DVAE(AutoencoderKLCogVideoX):
    """AutoencoderKLCogVideoX (same config, same weights, same keys) with `encode_video` / `decode_latents` helpers.

    Construct it exactly like AutoencoderKLCogVideoX; `from_pretrained` loads a CogVideoX / CogVideoX-Fun `vae/`
    folder unchanged.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for module in self.modules():
            if isinstance(module, CogVideoXCausalConv3d):
                module.forward = _single_frame_forward.__get__(module)

    # ConfigMixin reads the constructor's parameters from its signature (from_config / from_pretrained).
    __init__.__signature__ = inspect.signature(AutoencoderKLCogVideoX.__init__)  # type: ignore[attr-defined]

    @property
    def spatial_scale(self) -> int:
        return 2 ** (len(self.config.block_out_channels) - 1)

    @property
    def clip_rule(self) -> ClipRule:
        """The clip lengths this VAE accepts (r k + 1 frames, r = its temporal_compression_ratio)."""
        return ClipRule(int(self.config.temporal_compression_ratio))

    def encode_video(
        self, video: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """(B, 3, T, H, W) in [-1, 1], T = 4k+1, H and W multiples of 8 -> scaled latents (B, C, k+1, H/8, W/8)."""
        if video.ndim != 5 or video.shape[1] != self.config.in_channels:
            raise ValueError(
                f"expected a video (B, {self.config.in_channels}, T, H, W), got shape {tuple(video.shape)}"
            )
        self.clip_rule.check(video.shape[2])
        s = self.spatial_scale
        if video.shape[3] % s or video.shape[4] % s:
            raise ValueError(f"video height and width must be multiples of {s}, got {tuple(video.shape[3:])}")
        dist = self.encode(video).latent_dist
        latents = dist.sample(generator) if sample else dist.mode()
        return latents * self.config.scaling_factor

    @torch.no_grad()
    def calibrate_scaling_factor(self, videos: list[torch.Tensor]) -> float:
        """Set config.scaling_factor to 1 / std of the (unscaled) latent means of `videos` ((B, 3, T, H, W) each), so
        that the diffusion space has unit variance like the noise (Stable Diffusion's recipe); returns the factor."""
        if not videos:
            raise ValueError("calibrate_scaling_factor needs at least one video")
        latents = torch.cat([self.encode(v).latent_dist.mode().flatten() for v in videos])
        factor = float(1.0 / latents.std().clamp_min(1e-6))
        self.register_to_config(scaling_factor=factor)
        return factor

    def decode_latents(self, latents: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Scaled latents (B, C, k+1, h, w) -> video (B, 3, num_frames, 8h, 8w) in [-1, 1].

        The CogVideoX decoder works in latent pairs; an even latent count decodes to 4(k+1) frames, of which the
        first three repeat the causal first frame: the last `num_frames` are kept.
        """
        video = self.decode(latents / self.config.scaling_factor).sample
        if video.shape[2] < num_frames:
            raise ValueError(
                f"{latents.shape[2]} latent frames decoded to {video.shape[2]} frames, fewer than {num_frames}"
            )
        return video[:, :, video.shape[2] - num_frames :].clamp(-1.0, 1.0)
