"""The static rollout step's split-K decode attention (lvr.train.decode_attention) computes SDPA's function over
each row's filled cache, and rollouts through it decode the same tokens as through SDPA whatever the chunk size.
The Triton kernels run on CPU under Triton's interpreter, in a child process (the interpreter is chosen when the
kernels are defined). Also the sampling helpers of the rollout's per-token tail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lvr.train import decode_attention as DA
from lvr.train import rollout as RO
from lvr.train.decode_step import decode_attention_kind

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def interpreted(tiny_dir, data_dir) -> dict:
    env = {**os.environ, "TRITON_INTERPRET": "1",
           "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parents[1]), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(HERE / "_decode_attention_interpreted.py"), str(tiny_dir),
                           str(data_dir)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_split_k_kernels_equal_sdpa_over_the_filled_slots(interpreted):
    assert len(interpreted["kernel"]) == 4
    for case in interpreted["kernel"]:
        assert case["finite"], case
        assert case["rel_err"] < 1e-5, case


def test_fused_kernel_rotates_writes_the_new_slot_and_attends_through_it(interpreted):
    assert len(interpreted["rope_kernel"]) == 3
    for case in interpreted["rope_kernel"]:
        assert case["finite"], case
        assert case["rel_err"] < 1e-5, case
        assert case["cache_err"] < 1e-6, case


def test_rollouts_through_split_k_decode_like_sdpa_at_every_chunk_size(interpreted):
    runs = interpreted["rollouts"]
    base = runs["sdpa"]
    assert any(any(row) for lat in base["latent"] for row in lat)      # latent blocks really ran
    for name in ("split64", "split256", "split64_compiled"):
        assert runs[name]["tokens"] == base["tokens"], name
        assert runs[name]["latent"] == base["latent"], name
        for a, b in zip(runs[name]["logps"], base["logps"]):
            assert torch.allclose(torch.tensor(a), torch.tensor(b), atol=1e-5), name
        for a, b in zip(runs[name]["hidden"], base["hidden"]):
            assert torch.allclose(torch.tensor(a), torch.tensor(b), atol=1e-4), name


def test_default_split_covers_the_gpu_in_whole_tiles():
    assert DA.default_split(8, 2, 1024) == 64          # 3B rollout shapes: 16 chunks x 16 (row, kv head) programs
    assert DA.default_split(64, 4, 4096) == 4096 and DA.default_split(1, 1, 256) == DA.BLOCK_N
    for args in [(8, 2, 1024), (3, 2, 768), (64, 4, 4096)]:
        assert DA.default_split(*args) % DA.BLOCK_N == 0


def test_decode_attention_choice_is_checked():
    assert decode_attention_kind(torch.device("cpu"), "sdpa") == "sdpa"
    with pytest.raises(ValueError, match="unknown decode attention"):
        decode_attention_kind(torch.device("cpu"), "paged")
    assert DA.supports(128) and DA.supports(16) and not DA.supports(80) and not DA.supports(8)
    with pytest.raises(ValueError, match="head size 80"):
        decode_attention_kind(torch.device("cpu"), "split_k", head_dim=80)
    if not DA.available(torch.device("cpu")):
        assert decode_attention_kind(torch.device("cpu")) == "sdpa"
        with pytest.raises(ValueError, match="cannot run on cpu"):
            decode_attention_kind(torch.device("cpu"), "split_k")


def test_categorical_draw_follows_the_weights():
    gen = torch.Generator().manual_seed(0)
    w = torch.zeros(4, 1000)
    w[0, 7] = 1.0                                    # one-hot: always that index
    w[1, [3, 9]] = torch.tensor([1.0, 3.0])          # 1:3
    w[2, 500:] = 1e-3
    w[3] = 1.0
    draws = torch.stack([RO.sample_categorical(w, gen) for _ in range(4000)])
    assert (draws[:, 0] == 7).all()
    assert set(draws[:, 1].tolist()) == {3, 9}
    assert abs(float((draws[:, 1] == 9).float().mean()) - 0.75) < 0.03
    assert (draws[:, 2] >= 500).all()
    assert len(set(draws[:, 3].tolist())) > 900     # near-uniform over the whole row


def test_token_logps_equal_log_softmax():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 5000, generator=gen) * 4
    tok = torch.randint(0, 5000, (6,), generator=gen)
    ref = torch.gather((logits / 0.7).log_softmax(-1), 1, tok[:, None]).squeeze(1)
    assert torch.allclose(RO.token_logps(logits, tok, 0.7), ref, atol=1e-5)
