"""Training stages: which components train in each (docs/DESIGN.md, training).

vae        the VAE alone (reconstruction; the tiny preset has no pretrained VAE to start from)
estimator  the router's residual estimator
stage1     transformer and caption embedding
stage2     as stage1 with the interaction-aware reference cross-attention frozen (paper appendix C.4)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from model.pipeline import Embody4DPipeline

STAGES = ("vae", "estimator", "stage1", "stage2")
# the interaction-aware reference cross-attention (frozen in stage 2, paper appendix C.4)
INTERACTION_MODULES = ("perceiver_cross_attention", "ref_patch_embed")


def set_training_stage(pipeline: Embody4DPipeline, stage: str) -> list[torch.nn.Parameter]:
    """Freeze per stage and return the trainable parameters.

    vae:       only the VAE trains (reconstruction; the tiny preset has no pretrained VAE to start from).
    estimator: only the router's residual estimator trains (target z_target - z_warp).
    stage1:    transformer and caption embedding train; VAE and router frozen.
    stage2:    as stage1 with the interaction-aware reference cross-attention frozen (paper appendix C.4).
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    trainable = {
        "vae": ("vae",),
        "estimator": ("router",),
        "stage1": ("transformer", "text_encoder"),
        "stage2": ("transformer", "text_encoder"),
    }[stage]
    for name, module in pipeline.models.items():
        module.requires_grad_(name in trainable)
        module.train(name in trainable)
    if stage == "stage2":
        for name, module in pipeline.transformer.named_children():
            if name in INTERACTION_MODULES:
                module.requires_grad_(False)
    return [p for module in pipeline.models.values() for p in module.parameters() if p.requires_grad]
