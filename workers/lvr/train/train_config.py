"""TrainConfig: every setting of one training run, its per-stage defaults (LVR-SPEC §7) and the rules that tie settings
together. Built from a run spec by `spec`; settings the contract does not carry keep these defaults unless a
`--set name=value` override (`overrides`) changes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from .errors import ConfigError


@dataclass
class TrainConfig:
    # identity and locations
    run_id: str
    stage: str                                  # "sft" | "grpo"
    model_uri: str
    data_uri: str
    checkpoint_uri: str
    bundle_uri: str
    images_uri: str | None = None
    checkpoint_every: int = 500
    keep_last: int | None = None
    model_id: str | None = None
    # optimisation (LVR-SPEC §7)
    learning_rate: float | None = None          # default per stage: 1e-5 (sft), 5e-6 (grpo)
    max_steps: int | None = None                # default 2500 (sft); grpo: from numEpochs over the records
    num_epochs: float | None = None
    grad_accum: int | None = None               # default 8 (sft), 2 (grpo)
    warmup_ratio: float = 0.03
    weight_decay: float = 0.1
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    max_grad_norm: float = 1.0
    seed: int = 42
    # runtime
    precision: str = "auto"                     # auto (bf16 on GPU, fp32 on CPU) | bf16 | fp32
    gradient_checkpointing: bool | None = None  # default: on for GPU
    strategy: str = "auto"                      # auto (fsdp when world > 1) | ddp | fsdp
    attn_implementation: str = "auto"           # auto (flash_varlen_torch for sft on CUDA, else sdpa) | sdpa | eager
    #                                             | flash_varlen_torch (lvr.train.attention)
    mixed_precision: str = "auto"               # auto (fsdp for sft on CUDA in bf16, also at world 1) | autocast | fsdp
    fsdp_reshard_after_forward: bool | None = None  # FSDP2 decoder layers; auto: False (keep gathered, ZeRO-2
    #                                             style) at world 1 and on one node when memory allows (distributed.py)
    fsdp_defer_grad_sync: bool | None = None    # FSDP2: no reduce-scatter on non-final grad-accum micro-steps
    #                                             (gradients accumulate unsharded in fp32); auto: as above
    checkpoint_ratio: float = 1.0               # fraction of decoder layers gradient-checkpointed (when it is on)
    compile_layers: bool | None = None          # regional torch.compile of MLPs and RMS norms; default: on for GPU
    pin_memory: bool | None = None              # default: on for GPU (pinned batches, non-blocking copies)
    ce_chunk_rows: int = 4096                   # LM head + CE in chunks of this many target rows (0: one shot)
    host_plan: bool | None = None               # step indexing built in the prefetcher (flat packing); default: GPU
    fused_ce: bool | None = None                # LM head + CE fused per chunk, logits never whole; default: GPU
    fused_rope: bool | None = None              # compiled text and vision rotary application; default: GPU
    fused_adamw: bool | None = None             # torch's fused AdamW kernel; default: GPU
    compile_rollout_step: bool | None = None    # GRPO: torch.compile the static rollout engine's decoder layer
    #                                             (fuses its small kernels: 1.30x rollout tokens/s on H200); default: GPU
    log_every: int = 1
    upstream_compat: bool = False
    # stage 1
    lvr_lambda: float = 0.1
    cache_samples: bool = False                 # keep every built sample in memory (small datasets seen for many
    #                                             epochs: decoding, preprocessing and tokenising once per record)
    train_vision: bool = False                  # train the vision tower and merger too (a model from scratch has
    #                                             no pretrained vision to freeze, §3.2)
    lvr_fct: str = "mse"
    lvr_self_feed: bool = False                 # CE from a second pass on the model's own latent predictions (as
    #                                             decoding feeds them), the latent loss from the teacher-forced pass
    lvr_feed_passes: int = 1                    # self-feed: passes building the fed latents (one per slot: exactly
    #                                             the latents decoding feeds)
    lvr_detach_target: bool = False             # stop-gradient on the region tokens the latent loss aims at
    lvr_center_target: bool = False             # latent target minus the batch's mean visual token
    max_packed_tokens: int = 16384
    long_seq_threshold: int = 4096
    max_instance_per_batch: int = 4
    packing_mode: str = "flat"                  # flat (no padding) | pad (upstream collator); same losses
    balance_ranks: bool | None = None           # deal each step's records to ranks with equal real tokens
    #                                             (lvr.data.packing.BalancedStream); default: on when world > 1
    insert_latent_end: bool = True
    keep_text_before_lvr: bool = True
    min_pixels: int | None = None               # default 128*28*28 (both stages)
    max_pixels: int | None = None               # default 5120*28*28 (sft), 2560*28*28 (grpo)
    # stage 2
    num_generations: int = 8
    prompts_per_step: int = 1
    micro_batch_size: int = 4
    num_iterations: int = 1                     # TRL's μ: policy updates per generated batch
    temperature: float = 0.9
    top_p: float = 1.0
    top_k: int = 50
    repetition_penalty: float = 1.0
    max_completion_length: int = 512
    max_prompt_length: int = 4096
    lvr_steps: int = 8
    beta: float = 0.04
    epsilon: float = 0.2
    loss_type: str = "bnpo"
    scale_rewards: bool = True
    reward_funcs: list[str] = field(default_factory=lambda: ["accuracy", "format"])
    reward_weights: list[float] | None = None
    system_prompt: str = "You are a helpful assistant."  # SFT samples, GRPO prompts, the bundle's default

    def resolved(self) -> "TrainConfig":
        sft = self.stage == "sft"
        return replace(
            self,
            learning_rate=self.learning_rate if self.learning_rate is not None else (1e-5 if sft else 5e-6),
            grad_accum=self.grad_accum or (8 if sft else 2),
            min_pixels=self.min_pixels or 128 * 28 * 28,
            max_pixels=self.max_pixels or ((5120 if sft else 2560) * 28 * 28),
        )


def check(cfg: TrainConfig) -> TrainConfig:
    def bad(msg):
        raise ConfigError(f"invalid run spec: {msg}")

    if cfg.stage == "grpo":
        if cfg.num_generations < 2:
            bad("numGenerations must be >= 2 (group-normalised advantages)")
        if cfg.micro_batch_size < 1:
            bad("perDeviceBatchSize must be >= 1")
        if cfg.num_iterations < 1:
            bad("numIterations must be >= 1")
        if cfg.loss_type not in ("bnpo", "grpo", "dr_grpo"):
            bad("lossType must be bnpo, grpo or dr_grpo")
        if cfg.temperature <= 0:
            bad("temperature must be > 0 for sampled rollouts")
        if not cfg.reward_funcs:
            bad("rewardFuncs must name at least one reward")
        if cfg.reward_weights is not None and len(cfg.reward_weights) != len(cfg.reward_funcs):
            bad("reward_weights needs one weight per reward function")
    if cfg.lvr_fct not in ("mse", "mae", "cosine"):
        bad("lvr_fct must be mse, mae or cosine")
    if cfg.lvr_feed_passes < 1:
        bad("lvr_feed_passes must be >= 1")
    if cfg.packing_mode not in ("flat", "pad"):
        bad("packing_mode must be flat or pad")
    if cfg.attn_implementation == "flash_varlen_torch" and cfg.packing_mode == "pad":
        bad("attn_implementation=flash_varlen_torch needs packing_mode=flat (no padded rows)")
    if cfg.attn_implementation not in ("auto", "sdpa", "eager", "flash_varlen_torch"):
        bad("attn_implementation must be auto, sdpa, eager or flash_varlen_torch")
    if cfg.mixed_precision not in ("auto", "autocast", "fsdp"):
        bad("mixed_precision must be auto, autocast or fsdp")
    if not 0.0 <= cfg.checkpoint_ratio <= 1.0:
        bad("checkpoint_ratio must be in [0, 1]")
    if cfg.strategy not in ("auto", "ddp", "fsdp"):
        bad("strategy must be auto, ddp or fsdp")
    if cfg.precision not in ("auto", "bf16", "fp32"):
        bad("precision must be auto, bf16 or fp32")
    if cfg.max_steps is not None and cfg.max_steps < 1:
        bad("maxSteps must be >= 1")
    if cfg.checkpoint_every < 1:
        bad("checkpoint.everySteps must be >= 1")
    if cfg.max_steps is None and cfg.stage == "sft":
        cfg.max_steps = 2500
    return cfg


def grpo_max_steps(cfg: TrainConfig, n_records: int, world: int) -> int:
    if cfg.max_steps:
        return cfg.max_steps
    epochs = cfg.num_epochs if cfg.num_epochs else 2.0
    return max(1, math.ceil(epochs * n_records / (cfg.prompts_per_step * world)))
