"""What SFT and GRPO share: processes and devices, model loading and wrapping (DDP / FSDP2), optimizer and LR
schedule, checkpoint save/restore, SIGTERM handling, progress accounting.

Distributed choice: FSDP2 (`torch.distributed.fsdp.fully_shard`, ZeRO-3 equivalent) for world > 1. 7B full
fine-tuning needs ~16 bytes/parameter of fp32 master weights, gradients and AdamW moments (~120 GB): it must be
sharded, and FSDP2 does that inside PyTorch with per-layer bf16 compute / fp32 reduce, torchrun rendezvous and no
extra dependency or launcher (DeepSpeed would add a 3rd-party build and its own launcher/ssh assumptions). DDP stays
available (`strategy=ddp`) for models that fit replicated (3B on 80 GB cards), where it is faster.
"""

from __future__ import annotations

import math
import os
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from .. import storage as store
from .errors import ConfigError
from .spec import TrainConfig

AUX_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "chat_template.json",
             "generation_config.json", "preprocessor_config.json")


@dataclass
class Env:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_env() -> Env:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Env(rank, world, local, device)


def barrier(env: Env) -> None:
    if env.world > 1:
        dist.barrier()


def all_reduce_max(env: Env, value: float) -> float:
    if env.world == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def all_reduce_sum(env: Env, value: float) -> float:
    if env.world == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=env.device)
    dist.all_reduce(t)
    return float(t.item())


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def compute_dtype(cfg: TrainConfig, env: Env) -> torch.dtype:
    if cfg.precision == "bf16" or (cfg.precision == "auto" and env.device.type == "cuda"):
        return torch.bfloat16
    return torch.float32


# --------------------------------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------------------------------
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

    from .attention import NAME as VARLEN, use_varlen

    attn = attn_choice(cfg, env)
    varlen = attn == VARLEN
    try:
        model = load_lvr_model(model_dir, dtype=torch.float32, attn_implementation="sdpa" if varlen else attn)
    except CheckpointError as e:
        raise ConfigError(str(e)) from e
    if varlen:
        use_varlen(model)
    if compute_dtype(cfg, env) == torch.bfloat16:
        make_patch_embed_nan_safe(model)          # fp32 conv + sanitising hook, as the upstream bf16 recipe (§5.1)
    if not cfg.train_vision:
        model.model.visual.requires_grad_(False)  # vision tower and merger frozen (§3.2, §7)
    return model.to(env.device)


def attn_choice(cfg: TrainConfig, env: Env) -> str:
    """`auto`: torch's varlen flash kernels (lvr.train.attention) for stage 1 on CUDA with flat packing when this
    torch has them, else sdpa. GRPO keeps sdpa under auto (padded rollout batches)."""
    if cfg.attn_implementation != "auto":
        return cfg.attn_implementation
    from .attention import NAME, available

    if cfg.stage == "sft" and cfg.packing_mode == "flat" and env.device.type == "cuda" and available():
        return NAME
    return "sdpa"


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


def ensure_process_group(env: Env) -> None:
    """A one-rank process group on an in-memory store (no torchrun / MASTER_ADDR needed) for FSDP2 at world 1."""
    if not dist.is_initialized():
        dist.init_process_group("nccl" if env.device.type == "cuda" else "gloo", store=dist.HashStore(),
                                rank=0, world_size=1)


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


def single_node(env: Env) -> bool:
    return int(os.environ.get("LOCAL_WORLD_SIZE", env.world)) == env.world


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
    # forward: its backward starts right away with the LM head. Explicitly, because an explicit True (the old code
    # passed the layers' value) turns off the root exemption on torch builds whose default is None.
    F.fully_shard(objective, mp_policy=mp, reshard_after_forward=False)
    objective.lvr_fsdp_plan = plan
    return objective


def micro_step(objective, last: bool):
    """Context for one gradient-accumulation micro-step's forward + backward (`last`: the one before the optimizer
    step). DDP: no all-reduce before the last (no_sync). FSDP2 per its FsdpPlan: defer_grad_sync skips the
    reduce-scatter before the last micro-step; with parameters kept gathered after forward they also stay gathered
    after the backward of non-final micro-steps, so later micro-steps need no all-gather; the last backward always
    reduces and reshards, so clipping and the optimizer see reduced sharded gradients."""
    import contextlib

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
    import contextlib

    return contextlib.nullcontext


def checkpointed_layers(n_layers: int, ratio: float) -> list[int]:
    """Indices of the decoder layers to checkpoint for a ratio in [0, 1], spread evenly (ratio 0.5 = every other)."""
    n = round(max(0.0, min(1.0, ratio)) * n_layers)
    return [i for i in range(n_layers) if (i + 1) * n // n_layers > i * n // n_layers]


def enable_checkpointing(model, cfg: TrainConfig, env: Env) -> list[int]:
    """Gradient checkpointing (default on GPU) on `checkpoint_ratio` of the decoder layers; the rest keep their
    activations (less recompute, more memory). Returns the checkpointed layer indices."""
    on = cfg.gradient_checkpointing if cfg.gradient_checkpointing is not None else env.device.type == "cuda"
    if not on or cfg.checkpoint_ratio <= 0:
        return []
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    layers = model.model.language_model.layers
    keep = set(checkpointed_layers(len(layers), cfg.checkpoint_ratio))
    for i, layer in enumerate(layers):
        layer.gradient_checkpointing = i in keep
    return sorted(keep)


def compile_regions(model, dynamic: bool = True, backend: str | None = None) -> int:
    """Regional torch.compile of the shape-generic pieces of every decoder layer and vision block (MLPs and RMS
    norms: one fused kernel instead of the chains of casts, pow, mean, rsqrt, mul, silu, mul). Attention, RoPE and
    the data-dependent parts stay eager. Identical layers share one compiled graph. Returns the count compiled."""
    kw = {"dynamic": dynamic}
    if backend:
        kw["backend"] = backend
    mods = []
    for layer in model.model.language_model.layers:
        mods += [layer.mlp, layer.input_layernorm, layer.post_attention_layernorm]
    mods.append(model.model.language_model.norm)
    for blk in model.model.visual.blocks:
        mods += [blk.mlp, blk.norm1, blk.norm2]
    for m in mods:
        m.compile(**kw)
    return len(mods)


def unwrap(module):
    return getattr(module, "module", module)


def build_optimizer(model, cfg: TrainConfig, env: Env, no_decay_norm_bias: bool):
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if no_decay_norm_bias:
        decay = [p for n, p in named if p.ndim >= 2]
        rest = [p for n, p in named if p.ndim < 2]
        groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    else:  # stage-1 DeepSpeed behaviour: one weight-decay value for every trainable parameter (§7)
        groups = [{"params": [p for _, p in named], "weight_decay": cfg.weight_decay}]
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=tuple(cfg.adam_betas), eps=cfg.adam_eps,
                             foreach=env.device.type == "cuda")


def cosine_schedule(optimizer, max_steps: int, warmup_ratio: float):
    warmup = math.ceil(warmup_ratio * max_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        progress = (step - warmup) / max(1, max_steps - warmup)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def clip_grad(module, max_norm: float) -> float:
    params = [p for p in module.parameters() if p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)


def optimizer_step(module, optimizer, scheduler, max_norm: float) -> tuple[float, float]:
    """Clip, step, advance the schedule and clear the gradients; returns (grad norm, lr the step used)."""
    grad_norm = clip_grad(module, max_norm)
    lr = optimizer.param_groups[0]["lr"]
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm, lr


# --------------------------------------------------------------------------------------------------------------
# state (checkpoint contents)
# --------------------------------------------------------------------------------------------------------------
def rng_state() -> dict:
    st = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.random.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict) -> None:
    random.setstate(st["python"])
    np.random.set_state(st["numpy"])
    torch.random.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def full_state(objective, optimizer, env: Env) -> tuple[dict, dict]:
    """Full (unsharded) model and optimizer state dicts, gathered to CPU; keys of the inner HF model."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_optimizer_state_dict

    obj = unwrap(objective)
    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    msd = get_model_state_dict(obj, options=opts)
    osd = get_optimizer_state_dict(obj, optimizer, options=opts)
    strip = lambda d: {k[len("model."):] if k.startswith("model.") else k: v for k, v in d.items()}
    msd = strip(msd)
    if "state" in osd:
        osd = {"state": strip(osd["state"]), "param_groups": [
            {**g, "params": [k[len("model."):] if k.startswith("model.") else k for k in g["params"]]}
            for g in osd["param_groups"]]}
    return msd, osd


def load_optimizer_state(objective, optimizer, osd: dict) -> None:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    add = lambda k: "model." + k
    osd = {"state": {add(k): v for k, v in osd["state"].items()},
           "param_groups": [{**g, "params": [add(k) for k in g["params"]]} for g in osd["param_groups"]]}
    set_optimizer_state_dict(unwrap(objective), optimizer, osd,
                             options=StateDictOptions(full_state_dict=True))


def save_model_folder(model, state_dict: dict, source_dir: Path, dest: Path) -> None:
    model.save_pretrained(dest, state_dict=state_dict)
    for name in AUX_FILES:
        if (source_dir / name).is_file():
            (dest / name).write_bytes((source_dir / name).read_bytes())


# --------------------------------------------------------------------------------------------------------------
# SIGTERM and progress
# --------------------------------------------------------------------------------------------------------------
class StopFlag:
    """SIGTERM/SIGINT set a flag; the loop saves at the next step boundary and exits with EXIT_PREEMPTED."""

    def __init__(self):
        self.requested = False
        self.signal = None
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame):
        self.requested = True
        self.signal = signal.Signals(signum).name


class Meter:
    def __init__(self, start_step: int, total: int):
        self.start, self.total, self.t0 = start_step, total, time.time()
        self.step_t = time.time()

    def tick(self) -> float:
        now = time.time()
        dt_, self.step_t = now - self.step_t, now
        return dt_

    def eta(self, step: int) -> float:
        done = step - self.start
        return (time.time() - self.t0) / max(1, done) * (self.total - step)
