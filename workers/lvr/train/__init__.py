"""LVR training worker: stage-1 SFT and stage-2 GRPO_latent (docs/training.md).

- `cli`        `python -m lvr sft|grpo --spec FILE`; exit codes in `errors`
- `spec`       run spec (lvr.training.requests) -> TrainConfig, validated against the libs/contracts JSON Schema
- `sft`, `grpo` the two training loops, top to bottom
- `losses`     stage-1 forward/loss (§3) and the GRPO objective (§5.3-5.4)
- `rollout`    `steps` decoding under a KV cache that records the latents it feeds
- `rewards`    accuracy / format / user rewards by name
- `runtime`    devices, torchrun, FSDP2/DDP, optimizer, schedule, state dicts, SIGTERM
- `session`    resume point, events, checkpoints, final export + publish
- `checkpoint` MinIO/local checkpoints with MANIFEST.json + _COMPLETE
- `events`     stdout JSON lines + Kafka
- `store`      local paths and s3:// URIs
- `attention`  optional torch varlen flash backend
"""
