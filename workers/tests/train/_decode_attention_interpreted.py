"""Run under TRITON_INTERPRET=1 (set before triton is imported) by test_decode_attention.py: the split-K decode
attention kernels and the decode projections (lvr.train.decode_linear) on CPU tensors. Prints one JSON object."""

from __future__ import annotations

import json
import sys

import torch

import torch.nn.functional as F

from lvr.train import decode_attention as DA
from lvr.train import decode_linear as DL
from lvr.train import rollout as RO

from _train_helpers import load_model
from test_rollout_engine import MAX_NEW, N_STEPS, S, _inputs, _prompt


def kernel_errors() -> list[dict]:
    """Relative error against float64 SDPA: rows of 1 slot, a full cache and lengths in between, several splits,
    groups of 2, 3 and 8 query heads per key/value head."""
    gen = torch.Generator().manual_seed(0)
    out = []
    for B, Hq, Hkv, D, S_, split in [(3, 4, 2, 16, 256, 64), (4, 16, 2, 128, 320, 64), (2, 6, 2, 32, 192, 128),
                                     (3, 8, 1, 64, 512, 256)]:
        q, k, v = (torch.randn(shape, generator=gen) for shape in ((B, Hq, D), (B, Hkv, S_, D), (B, Hkv, S_, D)))
        lengths = torch.randint(1, S_ + 1, (B,), generator=gen)
        lengths[0], lengths[-1] = 1, S_
        got = DA.split_k_attention(q, k, v, lengths, D ** -0.5, split)
        ref = DA.sdpa_attention(q.double(), k.double(), v.double(), lengths, D ** -0.5)
        out.append({"shape": [B, Hq, Hkv, D, S_, split], "rel_err": float((got.double() - ref).norm() / ref.norm()),
                    "finite": bool(torch.isfinite(got).all())})
    return out


def rope_kernel_errors() -> list[dict]:
    """The decode step's fused kernel from a q/k/v projection row: against rotating in torch, writing the new key and
    value at slot idx, then SDPA over slots 0..idx (float64). Also: the cache holds the new key and value afterwards
    and no other slot changed."""
    gen = torch.Generator().manual_seed(1)
    out = []
    for B, Hq, Hkv, D, S_, split in [(3, 4, 2, 16, 256, 64), (4, 16, 2, 128, 320, 64), (2, 8, 1, 64, 512, 256)]:
        qkv = torch.randn(B, (Hq + 2 * Hkv) * D, generator=gen)
        k, v = (torch.randn(B, Hkv, S_, D, generator=gen) for _ in range(2))
        idx = torch.randint(0, S_, (B,), generator=gen)
        idx[0], idx[-1] = 0, S_ - 1
        ang = torch.rand(B, D // 2, generator=gen) * 6
        cos = torch.cat([ang, ang], -1).cos()
        sin = torch.cat([-ang, ang], -1).sin()
        qk = qkv[:, :(Hq + Hkv) * D].view(B, Hq + Hkv, D)
        qk = qk * cos[:, None] + qk.roll(D // 2, -1) * sin[:, None]
        k_ref, v_ref = k.clone(), v.clone()
        rows = torch.arange(B)
        k_ref[rows, :, idx] = qk[:, Hq:]
        v_ref[rows, :, idx] = qkv[:, (Hq + Hkv) * D:].view(B, Hkv, D)
        ref = DA.sdpa_attention(qk[:, :Hq].double(), k_ref.double(), v_ref.double(), idx + 1, D ** -0.5)
        got = DA.split_k_attention_rope(qkv, cos, sin, k, v, idx, Hq, D ** -0.5, split)
        out.append({"shape": [B, Hq, Hkv, D, S_, split], "rel_err": float((got.double() - ref).norm() / ref.norm()),
                    "finite": bool(torch.isfinite(got).all()),
                    "cache_err": float(max((k - k_ref).abs().max(), (v - v_ref).abs().max()))})
    return out


def projection_errors() -> list[dict]:
    """Relative error against float64 products: 1 to 16 rows, one slice and K cut into 2, 3 (uneven) and 8 slices
    (some empty), with and without the evict-first hint; the SiLU·up product of [gate; up]."""
    gen = torch.Generator().manual_seed(2)
    out = []
    for M, N, K, plan in [(8, 64, 256, DL.Plan()), (1, 96, 320, DL.Plan(split=2)), (16, 32, 448, DL.Plan(split=3)),
                          (5, 64, 192, DL.Plan(split=8, evict_first=True)), (3, 64, 512, DL.Plan(bn=64, bk=128))]:
        x, w = torch.randn(M, K, generator=gen), torch.randn(N, K, generator=gen)
        y = DL.rows_linear_into(x, w, p=plan)
        got = y.sum(0) if plan.split > 1 else y
        ref = F.linear(x.double(), w.double())
        out.append({"case": [M, N, K, plan.split], "shape": list(y.shape),
                    "split_shape": [plan.split, M, N] if plan.split > 1 else [M, N],
                    "rel_err": float((got.double() - ref).norm() / ref.norm())})
    for M, I, K in [(8, 64, 256), (3, 32, 128)]:
        x, gu = torch.randn(M, K, generator=gen), torch.randn(2 * I, K, generator=gen)
        gate, up = F.linear(x.double(), gu.double()).chunk(2, -1)
        ref = F.silu(gate) * up
        got = DL.swiglu_into(x, gu)
        out.append({"case": [M, I, K, "swiglu"], "shape": list(got.shape), "split_shape": [M, I],
                    "rel_err": float((got.double() - ref).norm() / ref.norm())})
    return out


def rollouts(tiny_dir: str, data_dir: str) -> dict:
    """Greedy static rollouts (two prompts of different lengths, latent blocks) with SDPA attention and cuBLAS
    projections (the reference), and with the split-K kernels at several chunk sizes and the Triton projections,
    eager and (as the worker runs them on CUDA) under torch.compile."""
    from pathlib import Path

    model = load_model(Path(tiny_dir)).eval()
    prompts = [_inputs(_prompt(Path(tiny_dir), Path(data_dir), q))
               for q in ("Hi?", "What colour is the largest square here?")]
    from lvr.train.decode_step import _DECODERS

    res = {}
    for name, attention, split, compiled, projections in [
            ("sdpa", "sdpa", None, False, "cublas"), ("split64", "split_k", 64, False, "cublas"),
            ("split256", "split_k", 256, False, "cublas"), ("split64_compiled", "split_k", 64, True, "cublas"),
            ("sdpa_triton", "sdpa", None, False, "triton"), ("split64_triton_compiled", "split_k", 64, True, None)]:
        cfg = RO.SamplingConfig(temperature=1.0, top_k=1, max_new_tokens=MAX_NEW, lvr_steps=N_STEPS,
                                force_first_token=S, decode_attention=attention, decode_split=split,
                                compile_step=compiled, decode_projections=projections)
        ros = RO.rollout_groups(model, prompts, 2, cfg, torch.Generator().manual_seed(0))
        res[name] = {"tokens": [r.completion_ids.tolist() for r in ros],
                     "latent": [r.latent_mask.tolist() for r in ros],
                     "logps": [r.sample_logps[r.completion_mask].tolist() for r in ros],
                     "hidden": [r.hidden_in[r.completion_mask].flatten().tolist()[:4096] for r in ros],
                     "projections": _DECODERS[model].projections}
    return res


if __name__ == "__main__":
    print(json.dumps({"kernel": kernel_errors(), "rope_kernel": rope_kernel_errors(), "projection": projection_errors(),
                      "rollouts": rollouts(sys.argv[1], sys.argv[2])}))
