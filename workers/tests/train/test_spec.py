"""Run spec: the libs/contracts JSON Schema is enforced; contract fields map onto TrainConfig; stage defaults (§7)."""

from __future__ import annotations

import pytest

from lvr.train.contracts import TRAINING_REQUEST, message_schema
from lvr.train.errors import ConfigError
from lvr.train.spec import config_from_message

from _train_helpers import spec


def msg(stage="sft", **hp):
    return spec("run-a", stage, "/m", "/d.json", "s3://b/ck", "s3://b/bundle", every=50, **hp)


def test_contract_schema_is_found_and_enforced():
    assert message_schema(TRAINING_REQUEST)["title"] == "TrainingRequest"
    with pytest.raises(ConfigError, match=r"\$.hyperparameters.warmup: is not allowed"):
        config_from_message(msg(warmup=0.1))
    bad = msg()
    bad["runId"] = "Not_A_DNS_Label"
    with pytest.raises(ConfigError, match=r"\$.runId: must match"):
        config_from_message(bad)
    with pytest.raises(ConfigError, match=r"\$.output: is required"):
        config_from_message({k: v for k, v in msg().items() if k != "output"})


def test_stage_defaults_and_mapping():
    sft = config_from_message(msg(maxSteps=10, lossLvrLambda=0.2, perDeviceBatchSize=3))
    assert (sft.learning_rate, sft.grad_accum, sft.max_steps, sft.lvr_lambda) == (1e-5, 8, 10, 0.2)
    assert sft.max_instance_per_batch == 3 and sft.max_pixels == 5120 * 28 * 28 and sft.checkpoint_every == 50
    g = config_from_message(msg("grpo", numGenerations=4, perDeviceBatchSize=2, lossType="dr_grpo",
                                rewardFuncs=["format"], upstreamCompat=True, decodingSteps=4),
                            {"max_completion_length": "64", "insert_latent_end": "false"})
    assert (g.learning_rate, g.grad_accum, g.temperature, g.beta, g.epsilon) == (5e-6, 2, 0.9, 0.04, 0.2)
    assert (g.num_generations, g.micro_batch_size, g.loss_type, g.lvr_steps) == (4, 2, "dr_grpo", 4)
    assert g.upstream_compat and g.reward_funcs == ["format"] and g.max_completion_length == 64
    assert g.insert_latent_end is False and g.max_pixels == 2560 * 28 * 28


def test_grpo_batching_and_iterations():
    # micro-batches need not divide the group: the loss is normalised over the whole batch (test_grpo.py)
    g = config_from_message(msg("grpo", numGenerations=6, perDeviceBatchSize=4, numIterations=3))
    assert (g.num_generations, g.micro_batch_size, g.num_iterations) == (6, 4, 3)
    assert config_from_message(msg("grpo")).num_iterations == 1
    with pytest.raises(ConfigError, match="numIterations"):
        config_from_message(msg("grpo", numIterations=0))
    with pytest.raises(ConfigError, match="numIterations must be >= 1"):
        config_from_message(msg("grpo"), {"num_iterations": "0"})
    with pytest.raises(ConfigError, match="unknown setting"):
        config_from_message(msg(), {"nope": "1"})


def test_every_contract_hyperparameter_is_mapped():
    """The TS DTO (via its generated JSON Schema) and the worker must agree: a field the contract accepts but the
    worker drops would silently train with a default."""
    import json
    from pathlib import Path

    from dataclasses import fields as dataclass_fields

    from lvr.train.spec_mapping import BATCH_SIZE_FIELD, HYPERPARAMETER_FIELDS
    from lvr.train.train_config import TrainConfig

    schema = json.loads(
        (Path(__file__).resolve().parents[3] / "libs/contracts/schema/training-request.schema.json").read_text()
    )
    fields = set(schema["definitions"]["TrainingHyperparameters"]["properties"])
    mapped = set(HYPERPARAMETER_FIELDS) | {"perDeviceBatchSize"}
    assert fields - mapped == set(), f"contract fields the worker ignores: {sorted(fields - mapped)}"
    assert mapped - fields == set(), f"worker mappings the contract lacks: {sorted(mapped - fields)}"
    config_fields = {f.name for f in dataclass_fields(TrainConfig)}
    assert set(HYPERPARAMETER_FIELDS.values()) | set(BATCH_SIZE_FIELD.values()) <= config_fields


def test_contract_hyperparameters_reach_the_config():
    from lvr.train.spec import config_from_message

    msg = {
        "apiVersion": "lvr.training/v1", "id": "m1", "timestamp": "2026-11-26T07:00:00Z", "runId": "r1",
        "stage": "grpo", "model": {"uri": "tiny:0"}, "data": {"uri": "/tmp/d.json"},
        "resources": {"gpusPerNode": 1}, "checkpoint": {"uri": "/tmp/ck", "everySteps": 5},
        "output": {"bundleUri": "/tmp/b"},
        "hyperparameters": {"warmupRatio": 0.1, "topP": 0.95, "rewardWeights": [1.0, 0.5], "promptsPerStep": 2,
                            "lvrLossFct": "cosine", "gradientCheckpointing": False},
    }
    cfg = config_from_message(msg)
    assert (cfg.warmup_ratio, cfg.top_p, cfg.reward_weights) == (0.1, 0.95, [1.0, 0.5])
    assert (cfg.prompts_per_step, cfg.lvr_fct, cfg.gradient_checkpointing) == (2, "cosine", False)


def test_overrides_are_parsed_by_the_field_type():
    from lvr.train.overrides import coerce, parse_sets

    assert coerce("keep_last", "3") == 3 and coerce("learning_rate", "2e-5") == 2e-5
    assert coerce("adam_betas", "[0.9, 0.95]") == (0.9, 0.95)
    assert coerce("reward_funcs", '["format"]') == ["format"]
    assert coerce("packing_mode", "pad") == "pad" and coerce("cache_samples", "1") is True
    with pytest.raises(ConfigError, match="--set max_steps=ten"):
        coerce("max_steps", "ten")
    with pytest.raises(ConfigError, match="expected a JSON array"):
        coerce("reward_funcs", '"format"')
    assert parse_sets(["a=1", " b = x=y "]) == {"a": "1", "b": "x=y"}
    with pytest.raises(ConfigError, match="--set expects name=value"):
        parse_sets(["novalue"])


def test_contract_errors_name_every_field_and_check_timestamps():
    from lvr.train.contract_validation import message_errors

    bad = msg(learningRate="fast")
    bad["timestamp"] = "yesterday"
    del bad["model"]
    assert message_errors(bad, TRAINING_REQUEST) == [
        "$.model: is required",
        "$.hyperparameters.learningRate: must be number",
        "$.timestamp: does not match any allowed form",
    ]
    for stamp in ("2026-11-26", "2026-11-26T06:00:00Z", "2026-11-26T06:00:00.5+01:00"):
        ok = msg()
        ok["timestamp"] = stamp
        assert message_errors(ok, TRAINING_REQUEST) == [], stamp
    with pytest.raises(ConfigError, match=r"invalid run spec: \$.stage: must be one of \['sft', 'grpo'\]"):
        config_from_message({**msg(), "stage": "ppo"})
