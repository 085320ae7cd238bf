"""How a model is distributed: DDP or FSDP2 wrapping, FSDP2's sharding plan, gradient sync per micro-step and the
autocast that goes with it.

Distributed choice: FSDP2 (`torch.distributed.fsdp.fully_shard`, ZeRO-3 equivalent) for world > 1. 7B full
fine-tuning needs ~16 bytes/parameter of fp32 master weights, gradients and AdamW moments (~120 GB): it must be
sharded, and FSDP2 does that inside PyTorch with per-layer bf16 compute / fp32 reduce, torchrun rendezvous and no
extra dependency or launcher (DeepSpeed would add a 3rd-party build and its own launcher/ssh assumptions). DDP stays
available (`strategy=ddp`) for models that fit replicated (3B on 80 GB cards), where it is faster.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from .processes import Env, ensure_process_group, single_node
from .train_config import TrainConfig


def use_fsdp(cfg: TrainConfig, env: Env, dtype: torch.dtype) -> bool:
    """FSDP2 whenever world > 1 (unless strategy=ddp); at world size 1 too when `mixed_precision` asks for it, or
    under `auto` for stage 1 on CUDA in bf16: then FSDP2's policy keeps bf16 compute copies of the weights next to
    the fp32 masters (one cast per layer per step) instead of autocast casting fp32 weights at every matmul of
    forward, recompute and backward, and the residual stream stays bf16, as in the multi-GPU and DeepSpeed runs."""
    if env.world > 1:
        return cfg.strategy in ("auto", "fsdp")
    if cfg.mixed_precision == "fsdp":
        return True
    return (cfg.mixed_precision == "auto" and cfg.stage == "sft" and env.device.type == "cuda"
            and dtype == torch.bfloat16)


@dataclass(frozen=True)
class FsdpPlan:
    """How FSDP2 shards a run (see fsdp_plan)."""
    reshard_after_forward: bool   # decoder layers (the root is never resharded after forward)
    defer_grad_sync: bool         # non-final grad-accum micro-steps skip the reduce-scatter


# auto keeps gathered bf16 parameters / unsharded fp32 gradients only while the estimated persistent bytes per rank
# (sharded fp32 masters + grads + AdamW moments, plus what the setting keeps) stay within this share of the card,
# which leaves the rest for activations, the CE chunks and allocator slack
FSDP_AUTO_MEMORY_SHARE = 0.5
FSDP_AUTO_MAX_WORLD = 8

def fsdp_plan(cfg: TrainConfig, env: Env, model, dtype: torch.dtype) -> FsdpPlan:
    """`fsdp_reshard_after_forward` / `fsdp_defer_grad_sync`, explicit or auto.

    reshard_after_forward=True (FSDP2's default, ZeRO-3) frees each decoder layer's gathered bf16 parameters after
    its forward and all-gathers them again for its backward (the activation-checkpoint recompute runs inside that
    backward and reuses the same gather): two all-gathers per layer per micro-step. False (ZeRO-2 style) keeps them
    from forward to backward: one all-gather, +P x 2 bytes of unsharded bf16 parameters per rank; across the
    micro-steps of one optimizer step they then stay gathered too (resharded after the last backward only).
    defer_grad_sync skips the reduce-scatter on non-final micro-steps (set_requires_gradient_sync(False)):
    gradients accumulate unsharded in fp32 (+P_trainable x 4 bytes), one reduce-scatter per optimizer step.

    auto: at world size 1, kept gathered (resharding frees nothing there) and synced every micro-step (there is no
    communication to save), as before. At world > 1 layers are resharded after forward (FSDP2's default): measured on
    2 x H200 with 3B shapes, keeping them gathered was slower (1.66x vs 1.77x over one GPU), the second all-gather
    being hidden behind the backward while the kept weights cost memory bandwidth. defer_grad_sync turns on for
    stage 1 on CUDA, one node, at most FSDP_AUTO_MAX_WORLD ranks (GRPO's reference model and rollout caches are not
    in the estimate) while sharded state + unsharded fp32 gradients fit FSDP_AUTO_MEMORY_SHARE of the card (3B: on
    2 x H100/H200 and 8 x H100; 7B: not on 8 x 80 GB nor 2 x H200); otherwise it syncs every micro-step."""
    want_r, want_d = cfg.fsdp_reshard_after_forward, cfg.fsdp_defer_grad_sync
    if env.world == 1:
        return FsdpPlan(bool(want_r) if want_r is not None else False, bool(want_d) if want_d is not None else False)
    budget = 0.0
    if cfg.stage == "sft" and env.device.type == "cuda" and single_node(env) and env.world <= FSDP_AUTO_MAX_WORLD:
        budget = FSDP_AUTO_MEMORY_SHARE * torch.cuda.get_device_properties(env.device).total_memory
    n_all = sum(p.numel() for p in model.parameters())
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    used = (16 * n_train + 4 * (n_all - n_train)) / env.world   # fp32 master (+ grad + 2 AdamW moments) shards
    gathered, grads = n_all * dtype.itemsize, n_train * 4
    reshard = bool(want_r) if want_r is not None else True
    if not reshard:
        used += gathered
    defer = bool(want_d) if want_d is not None else bool(budget and used + grads <= budget)
    return FsdpPlan(reshard, defer)


def wrap(objective: torch.nn.Module, model, cfg: TrainConfig, env: Env, dtype: torch.dtype):
    """Single process: as is, or FSDP2 at world size 1 (see use_fsdp). Multi-process: FSDP2 (default) or DDP.
    Under FSDP2 the returned module carries its FsdpPlan as `lvr_fsdp_plan` (read by micro_step)."""
    fsdp = use_fsdp(cfg, env, dtype)
    if env.world == 1 and not fsdp:
        return objective
    if not fsdp:
        from torch.nn.parallel import DistributedDataParallel as DDP

        return DDP(objective, device_ids=[env.local_rank] if env.device.type == "cuda" else None)
    from torch.distributed import fsdp as F

    ensure_process_group(env)
    plan = fsdp_plan(cfg, env, model, dtype)
    mp = F.MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)
    for layer in model.model.language_model.layers:
        F.fully_shard(layer, mp_policy=mp, reshard_after_forward=plan.reshard_after_forward)
    # The root (embeddings, tied LM head, norm, frozen vision tower: ~1B parameters at 3B) is never resharded after
    # forward: its backward starts right away with the LM head. Explicitly False, because passing the layers' value
    # (True) would turn off the root exemption on torch builds whose default is None.
    F.fully_shard(objective, mp_policy=mp, reshard_after_forward=False)
    objective.lvr_fsdp_plan = plan
    return objective


def micro_step(objective, last: bool):
    """Context for one gradient-accumulation micro-step's forward + backward (`last`: the one before the optimizer
    step). DDP: no all-reduce before the last (no_sync). FSDP2 per its FsdpPlan: defer_grad_sync skips the
    reduce-scatter before the last micro-step; with parameters kept gathered after forward they also stay gathered
    after the backward of non-final micro-steps, so later micro-steps need no all-gather; the last backward always
    reduces and reshards, so clipping and the optimizer see reduced sharded gradients."""
    plan = getattr(objective, "lvr_fsdp_plan", None)
    if plan is not None:
        objective.set_requires_gradient_sync(last or not plan.defer_grad_sync)
        if hasattr(objective, "set_reshard_after_backward"):
            objective.set_reshard_after_backward(last or plan.reshard_after_forward)
        return contextlib.nullcontext()
    if last or not hasattr(objective, "no_sync"):
        return contextlib.nullcontext()
    return objective.no_sync()


def autocast_factory(cfg: TrainConfig, env: Env, dtype: torch.dtype):
    """bf16 autocast over fp32 master weights, except under FSDP2 whose mixed-precision policy already casts."""
    if dtype == torch.bfloat16 and not use_fsdp(cfg, env, dtype):
        return lambda: torch.autocast(env.device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def unwrap(module):
    return getattr(module, "module", module)
