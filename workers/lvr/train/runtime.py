"""What SFT and GRPO share, under one name for the training loops (`from . import runtime as R`). Each job has its
own module: `processes` (rank, world, device, collectives), `model_loading` (model folder, attention, dtype),
`distributed` (DDP / FSDP2 wrapping and planning), `compute_levers` (gradient checkpointing, regional compile),
`optim` (AdamW, LR schedule, clipped step), `rng` (seeding, RNG state), `state_dicts` (checkpoint contents),
`signals` (preemption) and `progress` (step timing)."""

from __future__ import annotations

from .compute_levers import SftLevers, checkpointed_layers, compile_regions, enable_checkpointing, fuse_rope
from .distributed import (FSDP_AUTO_MAX_WORLD, FSDP_AUTO_MEMORY_SHARE, FsdpPlan, autocast_factory, fsdp_plan,
                          micro_step, unwrap, use_fsdp, wrap)
from .model_loading import (attn_choice, cache_root, compute_dtype, load_model, materialise_model_dir,
                            set_varlen_attention, vision_attn_choice)
from .optim import build_optimizer, clip_grad, clip_grad_tensor, cosine_schedule, optimizer_step
from .processes import Env, all_reduce_max, all_reduce_sum, barrier, ensure_process_group, init_env, single_node
from .progress import Meter
from .rng import rng_state, seed_everything, set_rng_state
from .signals import StopFlag
from .state_dicts import AUX_FILES, full_state, load_optimizer_state, save_model_folder

__all__ = [
    "AUX_FILES", "FSDP_AUTO_MAX_WORLD", "FSDP_AUTO_MEMORY_SHARE", "Env", "FsdpPlan", "Meter", "SftLevers", "StopFlag",
    "all_reduce_max", "all_reduce_sum", "attn_choice", "autocast_factory", "barrier", "build_optimizer", "cache_root",
    "checkpointed_layers", "clip_grad", "clip_grad_tensor", "compile_regions", "compute_dtype", "cosine_schedule",
    "enable_checkpointing", "ensure_process_group", "fsdp_plan", "fuse_rope", "full_state", "init_env", "load_model",
    "load_optimizer_state", "materialise_model_dir", "micro_step", "optimizer_step", "rng_state", "save_model_folder",
    "set_varlen_attention", "seed_everything", "set_rng_state", "single_node", "unwrap", "use_fsdp",
    "vision_attn_choice", "wrap",
]
