"""The run spec: one `lvr.training.requests` message (libs/contracts) -> a validated TrainConfig.

The JSON Schema generated from the TypeScript DTOs (`libs/contracts/schema/training-request.schema.json`) is the shared
source of truth; it is found through LVR_CONTRACTS_SCHEMA_DIR or the monorepo checkout and checked with the small
draft-07 validator below (no jsonschema dependency). Knobs the contract does not carry (yet) keep the LVR-SPEC §7
defaults and can be overridden locally with `--set name=value` (field names of TrainConfig).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError

API_VERSION = "lvr.training/v1"
SCHEMA_NAME = "training-request.schema.json"


# --------------------------------------------------------------------------------------------------------------
# JSON Schema (draft-07 subset used by the generated contract schemas)
# --------------------------------------------------------------------------------------------------------------
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool}


def _type_ok(value: Any, t: str) -> bool:
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool) or (isinstance(value, float) and value.is_integer())
    if t == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t == "null":
        return value is None
    return isinstance(value, _TYPES[t])


def schema_errors(value: Any, schema: dict, root: dict, path: str = "$") -> list[str]:
    if "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/definitions/"):
            raise ConfigError(f"unsupported $ref {ref}")
        merged = {**root["definitions"][ref.split("/")[-1]], **{k: v for k, v in schema.items() if k != "$ref"}}
        return schema_errors(value, merged, root, path)
    if "oneOf" in schema:
        ok = [s for s in schema["oneOf"] if not schema_errors(value, s, root, path)]
        return [] if len(ok) >= 1 else [f"{path}: does not match any allowed form"]
    errs = []
    t = schema.get("type")
    if t is not None:
        types = t if isinstance(t, list) else [t]
        if not any(_type_ok(value, x) for x in types):
            return [f"{path}: must be {'/'.join(types)}"]
    if "enum" in schema and value not in schema["enum"]:
        errs.append(f"{path}: must be one of {schema['enum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            errs.append(f"{path}: must not be shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errs.append(f"{path}: must not be longer than {schema['maxLength']}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errs.append(f"{path}: must match {schema['pattern']}")
    if _type_ok(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            errs.append(f"{path}: must be >= {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errs.append(f"{path}: must be <= {schema['maximum']}")
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errs.append(f"{path}: at most {schema['maxItems']} items")
        if "items" in schema:
            for i, v in enumerate(value):
                errs += schema_errors(v, schema["items"], root, f"{path}[{i}]")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for k in schema.get("required", []):
            if k not in value:
                errs.append(f"{path}.{k}: is required")
        for k, v in value.items():
            if k in props:
                errs += schema_errors(v, props[k], root, f"{path}.{k}")
            elif schema.get("additionalProperties") is False:
                errs.append(f"{path}.{k}: is not allowed")
    return errs


def find_schema() -> dict | None:
    candidates = []
    if os.environ.get("LVR_CONTRACTS_SCHEMA_DIR"):
        candidates.append(Path(os.environ["LVR_CONTRACTS_SCHEMA_DIR"]) / SCHEMA_NAME)
    candidates.append(Path(__file__).resolve().parents[3] / "libs" / "contracts" / "schema" / SCHEMA_NAME)
    for c in candidates:
        if c.is_file():
            return json.loads(c.read_text())
    return None


# --------------------------------------------------------------------------------------------------------------
# TrainConfig
# --------------------------------------------------------------------------------------------------------------
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
    log_every: int = 1
    upstream_compat: bool = False
    # stage 1
    lvr_lambda: float = 0.1
    cache_samples: bool = False                 # keep every built sample in memory (small datasets seen for many
    #                                             epochs: decoding, preprocessing and tokenising once per record)
    train_vision: bool = False                  # train the vision tower and merger too (a model from scratch has
    #                                             no pretrained vision to freeze, §3.2); the latent target is detached
    lvr_fct: str = "mse"
    max_packed_tokens: int = 16384
    long_seq_threshold: int = 4096
    max_instance_per_batch: int = 4
    packing_mode: str = "flat"                  # flat (no padding) | pad (upstream collator); same losses
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


_HYPER = {  # contract hyperparameter -> TrainConfig field (perDeviceBatchSize is mapped per stage below)
    "learningRate": "learning_rate", "maxSteps": "max_steps", "numEpochs": "num_epochs",
    "gradientAccumulationSteps": "grad_accum", "warmupRatio": "warmup_ratio", "weightDecay": "weight_decay",
    "maxGradNorm": "max_grad_norm", "seed": "seed",
    "packingMode": "packing_mode", "attnImplementation": "attn_implementation", "strategy": "strategy",
    "gradientCheckpointing": "gradient_checkpointing", "minPixels": "min_pixels", "maxPixels": "max_pixels",
    "lossLvrLambda": "lvr_lambda", "lvrLossFct": "lvr_fct", "maxPackedTokens": "max_packed_tokens",
    "insertLatentEnd": "insert_latent_end",
    "numGenerations": "num_generations", "promptsPerStep": "prompts_per_step", "beta": "beta", "epsilon": "epsilon",
    "numIterations": "num_iterations",
    "lossType": "loss_type", "decodingSteps": "lvr_steps", "temperature": "temperature", "topP": "top_p",
    "topK": "top_k", "maxCompletionLength": "max_completion_length", "rewardFuncs": "reward_funcs",
    "rewardWeights": "reward_weights", "upstreamCompat": "upstream_compat", "systemPrompt": "system_prompt",
}


def coerce(name: str, text: str) -> Any:
    f = {x.name: x for x in fields(TrainConfig)}.get(name)
    if f is None:
        raise ConfigError(f"--set {name}: unknown setting")
    t = str(f.type)
    try:
        if "bool" in t:
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "1")
        if t.startswith("int") or t == "int | None":
            return int(text)
        if "float" in t and "tuple" not in t and "list" not in t:
            return float(text)
        if "list" in t or "tuple" in t:
            return json.loads(text)
        return text
    except ValueError as e:
        raise ConfigError(f"--set {name}={text}: {e}") from e


def config_from_message(msg: Any, overrides: dict[str, str] | None = None) -> TrainConfig:
    """Validate a run-spec message and build the resolved TrainConfig (ConfigError on anything invalid)."""
    if not isinstance(msg, dict):
        raise ConfigError("run spec must be a JSON object")
    schema = find_schema()
    if schema is not None:
        errs = schema_errors(msg, schema, schema)
        if errs:
            raise ConfigError("invalid run spec: " + "; ".join(errs[:10]))
    for key in ("runId", "stage", "model", "data", "checkpoint", "output"):
        if key not in msg:
            raise ConfigError(f"invalid run spec: $.{key}: is required")
    if msg.get("apiVersion", API_VERSION) != API_VERSION:
        raise ConfigError(f"invalid run spec: apiVersion must be {API_VERSION}")
    if msg["stage"] not in ("sft", "grpo"):
        raise ConfigError("invalid run spec: $.stage: must be sft or grpo")
    ck, out = msg["checkpoint"], msg["output"]
    kw: dict[str, Any] = dict(
        run_id=msg["runId"], stage=msg["stage"], model_uri=msg["model"]["uri"], data_uri=msg["data"]["uri"],
        images_uri=msg["data"].get("imagesUri") or None, checkpoint_uri=ck["uri"],
        checkpoint_every=int(ck.get("everySteps", 500)), keep_last=ck.get("keepLast"),
        bundle_uri=out["bundleUri"], model_id=out.get("modelId"))
    hp = msg.get("hyperparameters") or {}
    for k, v in hp.items():
        if k in _HYPER:
            kw[_HYPER[k]] = v
    if "perDeviceBatchSize" in hp:  # sft: instances per packed buffer; grpo: completions per micro-batch
        kw["max_instance_per_batch" if msg["stage"] == "sft" else "micro_batch_size"] = int(hp["perDeviceBatchSize"])
    cfg = TrainConfig(**kw)
    for name, text in (overrides or {}).items():
        setattr(cfg, name, coerce(name, text))
    return check(cfg.resolved())


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


def load_spec(path: str, overrides: dict[str, str] | None = None) -> TrainConfig:
    try:
        msg = json.loads(Path(path).read_text())
    except FileNotFoundError as e:
        raise ConfigError(f"run spec {path} not found") from e
    except json.JSONDecodeError as e:
        raise ConfigError(f"run spec {path} is not valid JSON ({e})") from e
    return config_from_message(msg, overrides)


def grpo_max_steps(cfg: TrainConfig, n_records: int, world: int) -> int:
    if cfg.max_steps:
        return cfg.max_steps
    epochs = cfg.num_epochs if cfg.num_epochs else 2.0
    return max(1, math.ceil(epochs * n_records / (cfg.prompts_per_step * world)))
