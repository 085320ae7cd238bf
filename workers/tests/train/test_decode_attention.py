"""The static rollout step's split-K decode attention (lvr.train.decode_attention) computes SDPA's function over
each row's filled cache, its Triton projections (lvr.train.decode_linear) compute the products, and rollouts through
them decode the same tokens as through SDPA and cuBLAS whatever the chunk size.
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
from lvr.train import decode_linear as DL
from lvr.train import rollout as RO
from lvr.train.decode_step import decode_attention_kind, decode_projections_kind

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


def test_projection_kernels_equal_the_products_over_every_slicing(interpreted):
    cases = interpreted["projection"]
    assert len(cases) == 7
    for case in cases:
        assert case["shape"] == case["split_shape"], case       # partial sums per slice, or the product itself
        assert case["rel_err"] < 1e-5, case


def test_rollouts_through_split_k_decode_and_triton_projections_like_sdpa_and_cublas(interpreted):
    runs = interpreted["rollouts"]
    base = runs["sdpa"]
    assert base["projections"] == "cublas"
    assert runs["sdpa_triton"]["projections"] == runs["split64_triton_compiled"]["projections"] == "triton"
    assert any(any(row) for lat in base["latent"] for row in lat)      # latent blocks really ran
    for name in ("split64", "split256", "split64_compiled", "sdpa_triton", "split64_triton_compiled"):
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


def test_projection_plans_cover_the_gpu_and_the_choice_is_checked():
    from transformers import Qwen2Config

    p = DL.plan(2048, 2048, 8)                    # 3B o: 64 column blocks x 4 slices
    assert (2048 // p.bn) * p.split >= DL.TARGET_PROGRAMS and p.split == 4
    assert DL.plan(11008, 2048, 8, split=1).split == 1 and DL.plan(2048, 11008, 8).split == 4
    assert DL.slice_len(11008, DL.Plan(split=8)) * 7 < 11008 <= DL.slice_len(11008, DL.Plan(split=8)) * 8
    assert DL.plan(2048, 2048, 17) is None and DL.plan(2040, 2048, 8) is None and DL.plan(2048, 2000, 8) is None
    cfg = Qwen2Config(hidden_size=2048, intermediate_size=11008, num_attention_heads=16, num_key_value_heads=2)
    cpu = torch.device("cpu")
    assert decode_projections_kind(cpu, "cublas", 8, cfg) == "cublas"
    with pytest.raises(ValueError, match="unknown decode projections"):
        decode_projections_kind(cpu, "cutlass", 8, cfg)
    with pytest.raises(ValueError, match="cannot run"):
        decode_projections_kind(cpu, "triton", 32, cfg)       # more rows than one tile
    if not DA.available(cpu):
        assert decode_projections_kind(cpu, None, 8, cfg) == "cublas"
    with pytest.raises(ValueError, match="no Triton tiling"):
        DL.rows_linear_into(torch.zeros(20, 64), torch.zeros(32, 64))


def test_top_k_draw_is_the_reference_draw():
    """sample_next's default path (top-k, no nucleus) draws what the explicit sort-and-mask reference draws from the
    same generator state."""
    cfg = RO.SamplingConfig(temperature=0.7, top_k=20)
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(6, 151936, generator=gen) * 3
    got = RO.sample_next(logits, cfg, None, torch.Generator().manual_seed(5))
    z = logits / 0.7
    kth = torch.sort(z, descending=True).values[:, 19:20]
    w = (z.masked_fill(z < kth, float("-inf")) - z.amax(-1, keepdim=True)).exp()
    ref = RO.sample_categorical(w, torch.Generator().manual_seed(5))
    assert torch.equal(got, ref)
    assert bool((torch.gather(z, 1, got[:, None]) >= kth).all())
    tied = torch.randint(-8, 8, (4, 5000), generator=gen).float()   # many entries tied with the k-th
    got = RO.sample_next(tied, cfg, None, torch.Generator().manual_seed(6))
    kth = torch.sort(tied / 0.7, descending=True).values[:, 19:20]
    w = ((tied / 0.7).masked_fill(tied / 0.7 < kth, float("-inf")) - (tied / 0.7).amax(-1, keepdim=True)).exp()
    assert torch.equal(got, RO.sample_categorical(w, torch.Generator().manual_seed(6)))


def test_nucleus_draw_keeps_only_the_top_p_mass_and_its_proportions():
    cfg = RO.SamplingConfig(temperature=1.0, top_k=0, top_p=0.6)
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log().expand(4000, -1).contiguous()
    draws = RO.sample_next(logits, cfg, None, torch.Generator().manual_seed(0))
    assert set(draws.tolist()) == {0, 1}                                  # 0.5 + 0.3 covers 0.6
    assert abs(float((draws == 0).float().mean()) - 0.5 / 0.8) < 0.03


def test_repetition_penalty_applies_before_the_top_k_draw():
    cfg = RO.SamplingConfig(temperature=1.0, top_k=1, repetition_penalty=100.0)
    logits = torch.tensor([[5.0, 4.0, 1.0], [5.0, 4.0, 1.0]])
    history = torch.tensor([[0], [2]])          # row 0 has seen token 0: its logit drops below token 1's
    assert RO.sample_next(logits, cfg, history, torch.Generator().manual_seed(0)).tolist() == [1, 0]
