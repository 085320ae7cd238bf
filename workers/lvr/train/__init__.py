"""LVR training worker: stage-1 SFT and stage-2 GRPO_latent (docs/training.md).

- `cli`        `python -m lvr sft|grpo --spec FILE`; exit codes in `errors`
- `spec`       run spec (lvr.training.requests) -> TrainConfig: the steps below in order
- `contracts`  the libs/contracts JSON Schemas: topic names, API versions
- `contract_validation` a message checked against its schema (`jsonschema`), errors as `$.path: rule`
- `spec_mapping` contract field names -> TrainConfig field names
- `overrides`  `--set name=value`, parsed by the field's type
- `train_config` TrainConfig, per-stage defaults, rules between settings
- `sft`, `grpo` the two training loops, top to bottom
- `losses`     stage-1 forward/loss (§3) and the GRPO objective (§5.3-5.4)
- `rollout`    `steps` decoding (lvr.lvr_state) under a KV cache that records the latents it feeds
- `rewards`    accuracy / format / user rewards by name
- `runtime`    what the loops share, re-exported from the modules below (`from . import runtime as R`)
- `processes`  rank, world, device from torchrun; collectives
- `model_loading` model folder (s3 download once per node), attention kernel, compute dtype, loading
- `distributed` DDP / FSDP2 wrapping, FSDP2 sharding plan, per-micro-step gradient sync, autocast
- `compute_levers` gradient checkpointing share, regional torch.compile
- `optim`      AdamW groups, warmup + cosine schedule, clipped step
- `rng`        seeding and RNG state
- `state_dicts` full model / optimizer state dicts, saved model folder
- `signals`    SIGTERM / SIGINT -> stop flag
- `progress`   step timing and ETA
- `session`    resume point, events, checkpoints, final export + publish
- `checkpoint` MinIO/local checkpoints with MANIFEST.json + _COMPLETE
- `events`     stdout JSON lines + Kafka, on the contract topics
- `store`      local paths and s3:// URIs
- `attention`  optional torch varlen flash backend
"""
