"""The model a run trains: its folder (downloaded once per node), attention kernel, compute dtype and loading."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .. import storage as store
from .errors import ConfigError
from .processes import Env, barrier
from .train_config import TrainConfig


def compute_dtype(cfg: TrainConfig, env: Env) -> torch.dtype:
    if cfg.precision == "bf16" or (cfg.precision == "auto" and env.device.type == "cuda"):
        return torch.bfloat16
    return torch.float32


def cache_root() -> Path:
    return Path(os.environ.get("LVR_CACHE_DIR", "/tmp/lvr-cache"))


def materialise_model_dir(uri: str, env: Env) -> Path:
    """A local folder for a model URI (s3:// prefixes are downloaded once per node, by local rank 0)."""
    if not store.is_s3(uri):
        p = store.local_path(uri)
        if not (p / "config.json").is_file():
            raise ConfigError(f"model folder {uri} has no config.json")
        return p
    dest = cache_root() / "models" / uri.replace("s3://", "").replace("/", "_")
    if env.local_rank == 0 and not (dest / ".done").exists():
        files = store.list_files(uri)
        if "config.json" not in files:
            raise ConfigError(f"model prefix {uri} has no config.json")
        store.download_dir(uri, dest)
        (dest / ".done").write_text("ok")
    barrier(env)
    return dest


def load_model(model_dir: Path, cfg: TrainConfig, env: Env):
    """The LVR model in fp32 master weights (bf16 compute comes from autocast / FSDP mixed precision; in bf16 the
    patch embedding is the NaN-safe one of LVR-SPEC §5.1)."""
    from ..model import CheckpointError, load_lvr_model, make_patch_embed_nan_safe

    from .attention import NAME as VARLEN

    attn = attn_choice(cfg, env)
    try:
        model = load_lvr_model(model_dir, dtype=torch.float32, attn_implementation="sdpa" if attn == VARLEN else attn)
    except CheckpointError as e:
        raise ConfigError(str(e)) from e
    set_varlen_attention(model, cfg, env)
    if compute_dtype(cfg, env) == torch.bfloat16:
        make_patch_embed_nan_safe(model)          # fp32 conv + sanitising hook, as the upstream bf16 recipe (§5.1)
    if not cfg.train_vision:
        model.model.visual.requires_grad_(False)  # vision tower and merger frozen (§3.2, §7)
    return model.to(env.device)


def set_varlen_attention(model, cfg: TrainConfig, env: Env) -> tuple[str, str]:
    """Switch the parts of a model loaded with sdpa that `attn_choice` / `vision_attn_choice` give varlen flash
    attention (transformers cannot be given that name at load time). Returns (text, vision) backends."""
    from .attention import NAME as VARLEN, use_varlen

    text, vision = attn_choice(cfg, env), vision_attn_choice(cfg, env)
    if VARLEN in (text, vision):
        use_varlen(model, text=text == VARLEN, vision=vision == VARLEN)
    return text, vision


def vision_attn_choice(cfg: TrainConfig, env: Env) -> str:
    """The vision tower's backend. Under `auto` torch's varlen flash kernels wherever they run (CUDA), in every stage:
    the tower's window attention is always a list of variable-length segments (one per window, never padded), which
    sdpa runs as one call per window (thousands of launches per image batch, e.g. in a GRPO rollout's prefill) and
    varlen as one per layer. An explicit `attn_implementation` applies to text and vision alike."""
    if cfg.attn_implementation != "auto":
        return cfg.attn_implementation
    from .attention import NAME, available

    return NAME if env.device.type == "cuda" and available() else "sdpa"


def attn_choice(cfg: TrainConfig, env: Env) -> str:
    """`auto`: torch's varlen flash kernels (lvr.train.attention) for stage 1 on CUDA with flat packing when this
    torch has them, else sdpa. GRPO keeps sdpa under auto (padded rollout batches)."""
    if cfg.attn_implementation != "auto":
        return cfg.attn_implementation
    from .attention import NAME, available

    if cfg.stage == "sft" and cfg.packing_mode == "flat" and env.device.type == "cuda" and available():
        return NAME
    return "sdpa"
