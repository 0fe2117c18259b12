"""Import a TrajectoryCrafter checkpoint into Embody4D.

TrajectoryCrafter ships its transformer (`CrossTransformer3DModel`: CogVideoX-Fun-V1.1-5b-InP plus a reference
stream) as a diffusers-style folder: `config.json` and `diffusion_pytorch_model*.safetensors` (or `.bin`). Its
parameter names map onto ours one to one:

    patch_embed.{proj,text_proj}.*           -> patch_embed.*            (diffusers CogVideoXPatchEmbed)
    time_embedding.linear_{1,2}.*            -> time_embedding.*
    transformer_blocks.i.{norm1,attn1,norm2,ff}.*  -> transformer_blocks.i.*   (diffusers CogVideoXBlock)
    norm_final.*, norm_out.*, proj_out.*     -> same
    ref_patch_embed.proj.*                   -> ref_patch_embed.proj.*
    perceiver_cross_attention.j.{norm1,norm2,to_q,to_kv,to_out}.* -> perceiver_cross_attention.j.*

The Embody4D modules are created fresh: expert FFNs with zero output projections, interaction biases at their
configured value and α = 0, so the imported model computes exactly what TrajectoryCrafter computes. The VAE folder
(CogVideoX-Fun's `vae/`) loads unchanged into `Embody4DVAE`.

    python -m model.convert_trajectorycrafter --transformer TC/crosstransformer --vae CogVideoX-Fun/vae --output OUT

OUT is a complete Embody4D model folder (`Embody4DPipeline.from_pretrained`, `TorchEngine(model_path=OUT)`); the parts
TrajectoryCrafter lacks (residual-estimator router, caption embedding, scheduler, pipeline settings) come from
`--preset` and are untrained: train the router (stage "estimator") before use, and pass T5 `prompt_embeds` for text.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import torch
from accelerate import init_empty_weights
from safetensors.torch import load_file
from torch import nn

from model.experts import RoutedExpertFFN
from model.presets import load_preset
from model.transformer_embody4d import Embody4DTransformer3DModel
from model.vae import Embody4DVAE

# Public key patterns (TrajectoryCrafter / CogVideoX-Fun names); each maps to the same name in our model.
PUBLIC_KEYS = [
    re.compile(p)
    for p in (
        r"patch_embed\.(proj|text_proj)\.(weight|bias)",
        r"time_embedding\.linear_[12]\.(weight|bias)",
        r"transformer_blocks\.\d+\.(norm1|norm2)\.(linear|norm)\.(weight|bias)",
        r"transformer_blocks\.\d+\.attn1\.(to_q|to_k|to_v|to_out\.0)\.(weight|bias)",
        r"transformer_blocks\.\d+\.attn1\.(norm_q|norm_k)\.(weight|bias)",
        r"transformer_blocks\.\d+\.ff\.net\.(0\.proj|2)\.(weight|bias)",
        r"(norm_final|norm_out\.linear|norm_out\.norm|proj_out)\.(weight|bias)",
        r"ref_patch_embed\.proj\.(weight|bias)",
        r"perceiver_cross_attention\.\d+\.(norm1|norm2)\.(weight|bias)",
        r"perceiver_cross_attention\.\d+\.(to_q|to_kv|to_out)\.weight",
    )
]
# Our keys that the public checkpoint cannot have: created fresh by the importer.
NEW_KEYS = re.compile(
    r"transformer_blocks\.\d+\.experts\..*|perceiver_cross_attention\.\d+\.interaction_bias|interaction_alpha"
)
# TrajectoryCrafter config fields that carry over to ours unchanged.
CONFIG_FIELDS = (
    "num_attention_heads",
    "attention_head_dim",
    "in_channels",
    "out_channels",
    "flip_sin_to_cos",
    "freq_shift",
    "time_embed_dim",
    "text_embed_dim",
    "num_layers",
    "dropout",
    "attention_bias",
    "sample_width",
    "sample_height",
    "sample_frames",
    "patch_size",
    "temporal_compression_ratio",
    "max_text_seq_length",
    "activation_fn",
    "timestep_activation_fn",
    "norm_elementwise_affine",
    "norm_eps",
    "spatial_interpolation_scale",
    "temporal_interpolation_scale",
    "use_rotary_positional_embeddings",
    "cross_attn_in_channels",
    "cross_attn_interval",
    "cross_attn_dim_head",
    "cross_attn_num_heads",
)
NEW_FIELDS = ("interaction_bias", "interaction_mask_dropout", "num_experts", "expert_inner_dim", "expert_strength")


class CheckpointMismatchError(ValueError):
    """The checkpoint's keys or shapes are not TrajectoryCrafter's; the message lists what was expected."""


def read_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    """All tensors of a diffusers-style folder (sharded or not, safetensors preferred over .bin)."""
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    if not files:
        raise FileNotFoundError(
            f"{folder} holds no *.safetensors or *.bin weights (expected diffusion_pytorch_model*.safetensors)"
        )
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(
            load_file(f) if f.suffix == ".safetensors" else torch.load(f, map_location="cpu", weights_only=True)
        )
    return state


def embody4d_config(public_config: dict[str, Any], new_modules: dict[str, Any] | None = None) -> dict[str, Any]:
    """Our transformer config from TrajectoryCrafter's config.json plus the new modules' settings (default: the
    trajectorycrafter-5b preset's)."""
    preset = load_preset("trajectorycrafter-5b")["transformer"]
    config = {k: public_config[k] for k in CONFIG_FIELDS if k in public_config}
    if not public_config.get("is_train_cross", True):
        config["cross_attn_interval"] = 0
    new = {k: preset[k] for k in NEW_FIELDS}
    new.update(new_modules or {})
    return {**config, **new}


def _check_keys(state: dict[str, torch.Tensor], model: nn.Module) -> None:
    expected = {k: v.shape for k, v in model.state_dict().items()}
    unexpected = sorted(k for k in state if k not in expected or not any(p.fullmatch(k) for p in PUBLIC_KEYS))
    missing = sorted(k for k in expected if k not in state and not NEW_KEYS.fullmatch(k))
    wrong = sorted(
        f"{k}: expected {tuple(expected[k])}, got {tuple(state[k].shape)}"
        for k in state
        if k in expected and state[k].shape != expected[k]
    )
    problems = []
    if unexpected:
        problems.append(
            f"{len(unexpected)} unexpected keys (not TrajectoryCrafter transformer parameters): {unexpected[:10]}"
        )
    if missing:
        problems.append(
            f"{len(missing)} missing keys (expected from the TrajectoryCrafter transformer): {missing[:10]}"
        )
    if wrong:
        problems.append(f"{len(wrong)} shape mismatches: {wrong[:10]}")
    if problems:
        raise CheckpointMismatchError("; ".join(problems))


def import_transformer(
    folder: str | Path, new_modules: dict[str, Any] | None = None, dtype: torch.dtype | None = None
) -> Embody4DTransformer3DModel:
    """Load a TrajectoryCrafter transformer folder as an Embody4DTransformer3DModel (new modules fresh)."""
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{folder} has no config.json (expected TrajectoryCrafter's crosstransformer folder)")
    config = embody4d_config(json.loads(config_path.read_text()), new_modules)
    state = read_state_dict(folder)
    dtype = dtype or next(iter(state.values())).dtype
    with init_empty_weights():
        model = Embody4DTransformer3DModel(**config)
    _check_keys(state, model)
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=False, assign=True)
    dim = model.config.num_attention_heads * model.config.attention_head_dim
    for block in model.transformer_blocks:
        block.experts = RoutedExpertFFN(
            dim, model.config.num_experts, model.config.expert_inner_dim, model.config.activation_fn
        ).to(dtype)
    if model.has_reference_stream:
        for attn in model.perceiver_cross_attention:
            attn.interaction_bias = nn.Parameter(
                torch.full((attn.heads,), float(model.config.interaction_bias), dtype=dtype)
            )
    model.interaction_alpha.zero_()
    still_empty = [n for n, p in model.named_parameters() if p.is_meta]
    if still_empty:
        raise CheckpointMismatchError(f"parameters left uninitialised after import: {still_empty[:10]}")
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--transformer", required=True, help="TrajectoryCrafter crosstransformer folder (config.json + weights)"
    )
    parser.add_argument("--vae", help="CogVideoX-Fun vae/ folder, copied into OUTPUT/vae")
    parser.add_argument("--output", required=True, help="Embody4D model folder to write")
    parser.add_argument(
        "--preset",
        default="trajectorycrafter-5b",
        help="preset (name or JSON path) for the router, caption embedding, scheduler and pipeline settings",
    )
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), help="default: the checkpoint's")
    args = parser.parse_args(argv)
    from model.pipeline import Embody4DPipeline  # the pipeline imports this package's models; keep the import local

    dtype = getattr(torch, args.dtype) if args.dtype else None
    components: dict[str, torch.nn.Module] = {"transformer": import_transformer(args.transformer, dtype=dtype)}
    if args.vae:
        components["vae"] = Embody4DVAE.from_pretrained(args.vae, torch_dtype=dtype)
    Embody4DPipeline.from_components(args.preset, seed=0, **components).save_pretrained(args.output)
    count = sum(p.numel() for p in components["transformer"].parameters())
    vae = "imported" if args.vae else "UNTRAINED (from preset)"
    print(
        f"wrote {args.output}: transformer {count:,} parameters; vae {vae}; "
        "router, caption embedding: untrained (from preset)"
    )


if __name__ == "__main__":
    main()
