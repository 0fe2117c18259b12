"""The Embody4D video diffusion transformer: CogVideoX blocks + reference cross-attention + routed experts.

Layout and parameter names follow TrajectoryCrafter's CrossTransformer3DModel (itself CogVideoX-Fun-V1.1-5b-InP with
a reference stream), so `convert_trajectorycrafter.py` maps its checkpoint 1:1:
    patch_embed, time_proj/time_embedding, transformer_blocks.i (diffusers CogVideoXBlock), norm_final, norm_out,
    proj_out, ref_patch_embed.proj, perceiver_cross_attention.j (after every `cross_attn_interval`-th block).
New modules (zero-initialised or inactive at construction): transformer_blocks.i.experts (eq. 5),
perceiver_cross_attention.j.interaction_bias (eq. 6) and the `interaction_alpha` buffer (eq. 7's curriculum
coefficient, 0 until training raises it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import (
    CogVideoXPatchEmbed,
    PatchEmbed,
    TimestepEmbedding,
    Timesteps,
    get_3d_rotary_pos_embed,
)
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.normalization import AdaLayerNorm
from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_resize_crop_region_for_grid
from torch import nn

from model.attention import InteractionAwareCrossAttention
from model.experts import ROUTES, Embody4DBlock


def tokens_from_latent_grid(grid: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Average a per-latent-pixel map (B, F, h, w, K) over patches -> (B, F * h/p * w/p, K), in patch-embed order."""
    b, f, h, w, k = grid.shape
    pooled = F.avg_pool2d(grid.permute(0, 1, 4, 2, 3).reshape(b * f, k, h, w).contiguous(), patch_size)
    return pooled.reshape(b, f, k, -1).permute(0, 1, 3, 2).reshape(b, -1, k)


class Embody4DTransformer3DModel(ModelMixin, ConfigMixin):
    """Denoiser over (B, F, C, H, W) latents.

    Inputs of `forward`:
        hidden_states:        (B, F, out_channels, H, W) noisy latent.
        timestep:             (B,) or scalar, diffusion time in [0, 1000).
        inpaint_latents:      (B, F, in_channels - out_channels, H, W): mask latent (1) then warped-video latent (16).
        encoder_hidden_states:(B, L, text_embed_dim) text tokens (T5 at full scale, a caption embedding at tiny scale).
        reference_latents:    (B, F_ref, cross_attn_in_channels, H, W) source-video latents, or None (no reference).
        route_weights:        (B, F, H, W, 3) copy/repair/inpaint weights on the latent grid, or None (no experts).
        interaction_mask:     (B, F, H, W) target-view interaction region on the latent grid, in [0, 1], or None.
        reference_interaction_mask: (B, F_ref, H, W) the same region in the reference, or None.
    Output: Transformer2DModelOutput(sample=(B, F, out_channels, H, W)), the prediction (v or flow velocity).
    """

    _supports_gradient_checkpointing = True
    _no_split_modules = ["Embody4DBlock"]

    @register_to_config
    def __init__(
        self,
        num_attention_heads: int = 48,
        attention_head_dim: int = 64,
        in_channels: int = 33,
        out_channels: int = 16,
        flip_sin_to_cos: bool = True,
        freq_shift: int = 0,
        time_embed_dim: int = 512,
        text_embed_dim: int = 4096,
        num_layers: int = 42,
        dropout: float = 0.0,
        attention_bias: bool = True,
        sample_width: int = 90,
        sample_height: int = 60,
        sample_frames: int = 49,
        patch_size: int = 2,
        temporal_compression_ratio: int = 4,
        max_text_seq_length: int = 226,
        activation_fn: str = "gelu-approximate",
        timestep_activation_fn: str = "silu",
        norm_elementwise_affine: bool = True,
        norm_eps: float = 1e-5,
        spatial_interpolation_scale: float = 1.875,
        temporal_interpolation_scale: float = 1.0,
        use_rotary_positional_embeddings: bool = True,
        use_learned_positional_embeddings: bool = False,
        cross_attn_in_channels: int = 16,
        cross_attn_interval: int = 2,
        cross_attn_dim_head: int = 128,
        cross_attn_num_heads: int = 16,
        interaction_bias: float = 2.0,
        interaction_mask_dropout: float = 0.1,
        num_experts: int = len(ROUTES),
        expert_inner_dim: int | None = None,
        expert_strength: float = 1.0,
    ) -> None:
        super().__init__()
        if in_channels <= out_channels:
            raise ValueError(
                f"in_channels ({in_channels}) must exceed out_channels ({out_channels}): noisy + mask + warped"
            )
        inner_dim = num_attention_heads * attention_head_dim
        self.patch_embed = CogVideoXPatchEmbed(
            patch_size=patch_size,
            in_channels=in_channels,
            embed_dim=inner_dim,
            text_embed_dim=text_embed_dim,
            bias=True,
            sample_width=sample_width,
            sample_height=sample_height,
            sample_frames=sample_frames,
            temporal_compression_ratio=temporal_compression_ratio,
            max_text_seq_length=max_text_seq_length,
            spatial_interpolation_scale=spatial_interpolation_scale,
            temporal_interpolation_scale=temporal_interpolation_scale,
            use_positional_embeddings=not use_rotary_positional_embeddings,
            use_learned_positional_embeddings=use_learned_positional_embeddings,
        )
        self.embedding_dropout = nn.Dropout(dropout)
        self.time_proj = Timesteps(inner_dim, flip_sin_to_cos, freq_shift)
        self.time_embedding = TimestepEmbedding(inner_dim, time_embed_dim, timestep_activation_fn)
        self.transformer_blocks = nn.ModuleList(
            Embody4DBlock(
                dim=inner_dim,
                num_attention_heads=num_attention_heads,
                attention_head_dim=attention_head_dim,
                time_embed_dim=time_embed_dim,
                dropout=dropout,
                activation_fn=activation_fn,
                attention_bias=attention_bias,
                norm_elementwise_affine=norm_elementwise_affine,
                norm_eps=norm_eps,
                num_experts=num_experts,
                expert_inner_dim=expert_inner_dim,
                expert_strength=expert_strength,
            )
            for _ in range(num_layers)
        )
        self.norm_final = nn.LayerNorm(inner_dim, norm_eps, norm_elementwise_affine)
        self.norm_out = AdaLayerNorm(
            embedding_dim=time_embed_dim,
            output_dim=2 * inner_dim,
            norm_elementwise_affine=norm_elementwise_affine,
            norm_eps=norm_eps,
            chunk_dim=1,
        )
        self.proj_out = nn.Linear(inner_dim, patch_size * patch_size * out_channels)

        num_cross = 0 if cross_attn_interval <= 0 else (num_layers + cross_attn_interval - 1) // cross_attn_interval
        if num_cross:
            self.ref_patch_embed = PatchEmbed(
                patch_size=patch_size, in_channels=cross_attn_in_channels, embed_dim=inner_dim, pos_embed_type=None
            )
            self.perceiver_cross_attention = nn.ModuleList(
                InteractionAwareCrossAttention(
                    inner_dim, cross_attn_num_heads, cross_attn_dim_head, interaction_bias=interaction_bias
                )
                for _ in range(num_cross)
            )
        self.register_buffer("interaction_alpha", torch.zeros(()))
        self.gradient_checkpointing = False
        self._rotary_cache: dict[tuple[int, int, int, str], tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def has_reference_stream(self) -> bool:
        return self.config.cross_attn_interval > 0

    def set_interaction_curriculum(self, alpha: float) -> None:
        """Set eq. 7's fusion coefficient α in [0, 1] (0: global path only). Saved with the weights."""
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"interaction curriculum α must be in [0, 1], got {alpha}")
        self.interaction_alpha.fill_(alpha)

    def _rotary_embedding(
        self, frames: int, height: int, width: int, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Rotary (cos, sin) for a latent video, computed once per shape and device (they hold no parameters)."""
        if not self.config.use_rotary_positional_embeddings:
            return None
        frames, height, width = int(frames), int(height), int(width)  # traced shapes arrive as tensors under torch.onnx
        key = (frames, height, width, str(device))
        if key not in self._rotary_cache:
            p = self.config.patch_size
            grid = (height // p, width // p)
            crops = get_resize_crop_region_for_grid(grid, self.config.sample_width // p, self.config.sample_height // p)
            # normal tensors even when first asked under inference_mode: a later training step saves them for backward
            with torch.inference_mode(False):
                self._rotary_cache[key] = get_3d_rotary_pos_embed(
                    self.config.attention_head_dim, crops, grid, frames, device=device
                )
        return self._rotary_cache[key]

    def _token_region(self, mask: torch.Tensor | None) -> torch.Tensor | None:
        """(B, F, h, w) in [0, 1] -> (B, F·h/p·w/p) bool (token at least half inside), with training mask dropout."""
        if mask is None:
            return None
        region = tokens_from_latent_grid(mask.unsqueeze(-1).float(), self.config.patch_size)[..., 0] >= 0.5
        if self.training and self.config.interaction_mask_dropout > 0:
            keep = torch.rand(region.shape[0], 1, device=region.device) >= self.config.interaction_mask_dropout
            region = region & keep
        return region

    def _check_inputs(
        self,
        hidden_states: torch.Tensor,
        inpaint_latents: torch.Tensor,
        reference_latents: torch.Tensor | None,
        route_weights: torch.Tensor | None,
        interaction_mask: torch.Tensor | None,
    ) -> None:
        c = self.config
        if hidden_states.ndim != 5 or hidden_states.shape[2] != c.out_channels:
            raise ValueError(f"hidden_states must be (B, F, {c.out_channels}, H, W), got {tuple(hidden_states.shape)}")
        b, f, _, h, w = hidden_states.shape
        if h % c.patch_size or w % c.patch_size:
            raise ValueError(f"latent height and width must be multiples of patch_size {c.patch_size}, got {(h, w)}")
        want = (b, f, c.in_channels - c.out_channels, h, w)
        if tuple(inpaint_latents.shape) != want:
            raise ValueError(
                f"inpaint_latents must be (B, F, mask 1 + warped {c.out_channels}, H, W) = {want}, "
                f"got {tuple(inpaint_latents.shape)}"
            )
        if reference_latents is not None:
            if not self.has_reference_stream:
                raise ValueError(
                    "reference_latents given but this model has no reference stream (cross_attn_interval=0)"
                )
            if (
                reference_latents.ndim != 5
                or reference_latents.shape[0] != b
                or reference_latents.shape[2:] != (c.cross_attn_in_channels, h, w)
            ):
                raise ValueError(
                    f"reference_latents must be (B, F_ref, {c.cross_attn_in_channels}, {h}, {w}), "
                    f"got {tuple(reference_latents.shape)}"
                )
        if route_weights is not None and tuple(route_weights.shape) != (b, f, h, w, c.num_experts):
            raise ValueError(
                f"route_weights must be (B, F, H, W, {c.num_experts}) = {(b, f, h, w, c.num_experts)}, "
                f"got {tuple(route_weights.shape)}"
            )
        if interaction_mask is not None and tuple(interaction_mask.shape) != (b, f, h, w):
            raise ValueError(
                f"interaction_mask must be (B, F, H, W) = {(b, f, h, w)}, got {tuple(interaction_mask.shape)}"
            )

    def forward(
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor | float,
        inpaint_latents: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        reference_latents: torch.Tensor | None = None,
        route_weights: torch.Tensor | None = None,
        interaction_mask: torch.Tensor | None = None,
        reference_interaction_mask: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> Transformer2DModelOutput | tuple[torch.Tensor]:
        self._check_inputs(hidden_states, inpaint_latents, reference_latents, route_weights, interaction_mask)
        batch, frames, channels, height, width = hidden_states.shape
        p = self.config.patch_size

        timestep = torch.as_tensor(timestep, device=hidden_states.device).expand(batch)
        emb = self.time_embedding(self.time_proj(timestep).to(hidden_states.dtype))

        tokens = self.embedding_dropout(
            self.patch_embed(encoder_hidden_states, torch.cat([hidden_states, inpaint_latents], 2))
        )
        text_len = encoder_hidden_states.shape[1]
        encoder_hidden_states, hidden_states = tokens[:, :text_len], tokens[:, text_len:]
        rotary = self._rotary_embedding(frames, height, width, hidden_states.device)

        reference = query_region = key_region = None
        if reference_latents is not None:
            reference = (
                self.ref_patch_embed(reference_latents.flatten(0, 1))
                .unflatten(0, reference_latents.shape[:2])
                .flatten(1, 2)
            )
            if interaction_mask is not None and reference_interaction_mask is not None:
                query_region = self._token_region(interaction_mask)
                key_region = self._token_region(reference_interaction_mask)
        route_tokens = (
            None if route_weights is None else tokens_from_latent_grid(route_weights.to(hidden_states.dtype), p)
        )

        for i, block in enumerate(self.transformer_blocks):
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                hidden_states, encoder_hidden_states = self._gradient_checkpointing_func(
                    block, hidden_states, encoder_hidden_states, emb, rotary, route_tokens
                )
            else:
                hidden_states, encoder_hidden_states = block(
                    hidden_states, encoder_hidden_states, emb, rotary, route_tokens
                )
            if reference is not None and i % self.config.cross_attn_interval == 0:
                attn = self.perceiver_cross_attention[i // self.config.cross_attn_interval]
                hidden_states = hidden_states + attn(
                    reference, hidden_states, query_region, key_region, self.interaction_alpha
                )

        hidden_states = self.proj_out(self.norm_out(self.norm_final(hidden_states), temb=emb))
        output = hidden_states.reshape(batch, frames, height // p, width // p, -1, p, p)
        output = output.permute(0, 1, 4, 2, 5, 3, 6).flatten(5, 6).flatten(3, 4)
        if not return_dict:
            return (output,)
        return Transformer2DModelOutput(sample=output)
