"""Where each field of a `lvr.training.requests` message lands in TrainConfig (contract names -> worker names)."""

from __future__ import annotations

from typing import Any

#: contract hyperparameter -> TrainConfig field; `perDeviceBatchSize` depends on the stage (`config_fields`).
HYPERPARAMETER_FIELDS = {
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

#: sft: instances per packed buffer; grpo: completions per micro-batch.
BATCH_SIZE_FIELD = {"sft": "max_instance_per_batch", "grpo": "micro_batch_size"}


def config_fields(message: dict) -> dict[str, Any]:
    """TrainConfig keyword arguments from a message that already satisfies the contract schema."""
    checkpoint, output, data = message["checkpoint"], message["output"], message["data"]
    fields: dict[str, Any] = dict(
        run_id=message["runId"], stage=message["stage"], model_uri=message["model"]["uri"], data_uri=data["uri"],
        images_uri=data.get("imagesUri") or None, checkpoint_uri=checkpoint["uri"],
        checkpoint_every=int(checkpoint.get("everySteps", 500)), keep_last=checkpoint.get("keepLast"),
        bundle_uri=output["bundleUri"], model_id=output.get("modelId"))
    hyperparameters = message.get("hyperparameters") or {}
    for name, value in hyperparameters.items():
        if name in HYPERPARAMETER_FIELDS:
            fields[HYPERPARAMETER_FIELDS[name]] = value
    if "perDeviceBatchSize" in hyperparameters:
        fields[BATCH_SIZE_FIELD[message["stage"]]] = int(hyperparameters["perDeviceBatchSize"])
    return fields
