"""Decode attention of the static rollout step at Qwen2.5-VL-3B rollout shapes: 8 rows (1 new token each), 16 query
and 2 key/value heads of 128, a 1,024-slot bf16 cache of which each row has filled its first `--filled` slots.

Times, per layer call, the previous path (SDPA with a boolean mask over the whole padded cache, query heads grouped
per key/value head, as lvr.train.decode_step had it) against lvr.train.decode_attention's split-K kernels at several
chunk sizes, each as 36 calls (one per layer, each over its own cache) captured in one CUDA graph and replayed, the
median over replays with CUDA events. Checks each against a float64 reference (relative error).

python bench/gpu/decode_attn.py   (writes $OUT/decode_attn.json, prints `BENCH {json}` and the best split)
"""

from __future__ import annotations

import argparse
import statistics

import torch

import train_common as C  # noqa: E402

from lvr.train import decode_attention as DA  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--cache", type=int, default=1024)
    ap.add_argument("--filled", type=int, nargs="+", default=[305, 560, 816],
                    help="filled slots per row: the prompt (304 + 1), mid-rollout, the end of 512 new tokens")
    ap.add_argument("--layers", type=int, default=36)
    ap.add_argument("--splits", type=int, nargs="+", default=[64, 128, 256, 1024])
    ap.add_argument("--replays", type=int, default=50)
    args = ap.parse_args()
    dev = torch.device("cuda")
    B, Hq, Hkv, D, S = args.rows, args.heads, args.kv_heads, args.head_dim, args.cache
    gen = torch.Generator(device=dev).manual_seed(0)
    q = torch.randn(B, Hq, D, device=dev, generator=gen).bfloat16()
    ks = [torch.randn(B, Hkv, S, D, device=dev, generator=gen).bfloat16() for _ in range(args.layers)]
    vs = [torch.randn(B, Hkv, S, D, device=dev, generator=gen).bfloat16() for _ in range(args.layers)]
    lengths = torch.zeros(B, dtype=torch.long, device=dev)
    scale = D ** -0.5

    def sdpa_old(k, v):   # the previous step: the mask is built once per step, outside the layers
        return torch.nn.functional.scaled_dot_product_attention(q.reshape(B, Hkv, Hq // Hkv, D), k, v,
                                                                attn_mask=mask).reshape(B, Hq, D)

    variants = {"sdpa_padded": sdpa_old}
    for split in args.splits:
        variants[f"split_k_{split}"] = (lambda s: lambda k, v: DA.split_k_attention(q, k, v, lengths, scale, s))(split)

    rows = []
    for filled in args.filled:
        lengths.fill_(filled)
        mask = (torch.arange(S, device=dev)[None, :] < lengths[:, None])[:, None, None, :]
        ref = DA.sdpa_attention(q.double(), ks[0].double(), vs[0].double(), lengths, scale)
        for name, fn in variants.items():
            out = fn(ks[0], vs[0])
            err = float((out.double() - ref).norm() / ref.norm())
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):
                    [fn(k, v) for k, v in zip(ks, vs)]
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                [fn(k, v) for k, v in zip(ks, vs)]
            for _ in range(5):
                graph.replay()
            times = []
            for _ in range(args.replays):
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                graph.replay()
                b.record()
                b.synchronize()
                times.append(a.elapsed_time(b) * 1e3 / args.layers)
            rows.append({"filled": filled, "variant": name, "us_per_layer": round(statistics.median(times), 2),
                         "us_spread": [round(min(times), 2), round(max(times), 2)], "rel_err": err})
            print(f"filled {filled:5d}  {name:14s} {rows[-1]['us_per_layer']:8.2f} us/layer  err {err:.2e}",
                  flush=True)
    split_rows = [r for r in rows if r["variant"].startswith("split_k")]
    mean = {v: statistics.mean(r["us_per_layer"] for r in split_rows if r["variant"] == v)
            for v in {r["variant"] for r in split_rows}}
    best = min(mean, key=mean.get)
    sdpa_mean = statistics.mean(r["us_per_layer"] for r in rows if r["variant"] == "sdpa_padded")
    result = {"bench": "decode_attn", "card": torch.cuda.get_device_name(), "rows": B, "heads": Hq,
              "kv_heads": Hkv, "head_dim": D, "cache": S, "layers": args.layers, "results": rows,
              "mean_us_per_layer": {**mean, "sdpa_padded": sdpa_mean}, "best": best,
              "best_split": int(best.rsplit("_", 1)[1]), "speedup_vs_sdpa": sdpa_mean / mean[best],
              "default_split": DA.default_split(B, Hkv, S)}
    C.emit(result, "decode_attn.json")


if __name__ == "__main__":
    main()
