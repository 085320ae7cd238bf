"""AdamW with its parameter groups, the warmup + cosine LR schedule, and one clipped optimizer step."""

from __future__ import annotations

import math

import torch

from .processes import Env
from .train_config import TrainConfig


def build_optimizer(model, cfg: TrainConfig, env: Env, no_decay_norm_bias: bool, fused: bool = False):
    """AdamW over the trainable parameters; `fused` (lever SftLevers.fused_adamw): the single-kernel implementation,
    else foreach on CUDA (whose temporaries are as large as the moments)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if no_decay_norm_bias:
        decay = [p for n, p in named if p.ndim >= 2]
        rest = [p for n, p in named if p.ndim < 2]
        groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    else:  # stage-1 DeepSpeed behaviour: one weight-decay value for every trainable parameter (§7)
        groups = [{"params": [p for _, p in named], "weight_decay": cfg.weight_decay}]
    impl = {"fused": True} if fused else {"foreach": env.device.type == "cuda"}
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=tuple(cfg.adam_betas), eps=cfg.adam_eps, **impl)


def cosine_schedule(optimizer, max_steps: int, warmup_ratio: float):
    warmup = math.ceil(warmup_ratio * max_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        progress = (step - warmup) / max(1, max_steps - warmup)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def clip_grad_tensor(module, max_norm: float) -> torch.Tensor:
    """Clip the gradients to `max_norm`; the total norm stays on the device (reading it is a host sync)."""
    params = [p for p in module.parameters() if p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    return norm.full_tensor() if hasattr(norm, "full_tensor") else norm


def clip_grad(module, max_norm: float) -> float:
    return float(clip_grad_tensor(module, max_norm))


def optimizer_step(module, optimizer, scheduler, max_norm: float) -> tuple[float, float]:
    """Clip, step, advance the schedule and clear the gradients; returns (grad norm, lr the step used)."""
    grad_norm = clip_grad(module, max_norm)
    lr = optimizer.param_groups[0]["lr"]
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm, lr
