"""Helpers shared by the training-worker tests (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

TINY_PIXELS = ["--set", "min_pixels=3136", "--set", "max_pixels=50176"]


def sigterm_at_first_progress(cmd: list[str], env: dict, cwd, timeout: float) -> tuple[int, str, str]:
    """Runs a worker command, sends SIGTERM when its first Progress event line appears, and returns
    (exit code, all stdout, stderr)."""
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if '"type": "Progress"' in line:
            proc.send_signal(signal.SIGTERM)
            break
    rest, err = proc.communicate(timeout=timeout)
    return proc.returncode, "".join(lines) + rest, err


def require_env(*names: str) -> dict:
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        pytest.fail(f"environment variable {missing[0]} is not set: start the test stack "
                    f"(`npm test`, or `eval \"$(node scripts/stack/cli.mjs env)\"`)", pytrace=False)
    return {n: os.environ[n] for n in names}


def sft_record(i: int, image: str = "a.png") -> dict:
    return {"image": image, "conversations": [
        {"from": "human", "value": f"<image>\nWhat is in region {i}?"},
        {"from": "gpt", "value": f"<lvr>\n<answer> thing{i} </answer>"}],
        "bboxes": [[0.05 * i, 0.1, 0.6, 0.9]]}


def tiny_opts():
    from lvr.data.sft import SftDataOptions

    return SftDataOptions(min_pixels=3136, max_pixels=50176)


def spec(run_id: str, stage: str, model: str, data: str, ckpt: str, bundle: str, every: int = 2, **hp) -> dict:
    return {"apiVersion": "lvr.training/v1", "id": f"req-{run_id}", "timestamp": "2026-11-26T06:00:00Z",
            "runId": run_id, "stage": stage, "model": {"uri": model}, "data": {"uri": data},
            "resources": {"gpusPerNode": 0}, "hyperparameters": hp,
            "checkpoint": {"uri": ckpt, "everySteps": every}, "output": {"bundleUri": bundle}}


def load_model(tiny_dir):
    import torch
    from lvr.model import LVRForConditionalGeneration

    m = LVRForConditionalGeneration.from_pretrained(tiny_dir, dtype=torch.float32, attn_implementation="sdpa")
    m.model.visual.requires_grad_(False)
    return m


def distinct_tokens_reward(completions: list[str], solutions: list[str], completion_ids=None, **_) -> list[float]:
    """A reward that differs between a random model's completions (number of distinct tokens), so that GRPO tests
    have non-zero advantages; used by name (`_train_helpers:distinct_tokens_reward`) with tests/train on PYTHONPATH."""
    return [float(len(set(ids))) for ids in completion_ids]
