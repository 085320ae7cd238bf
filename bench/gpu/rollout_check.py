"""Numerical check of the static rollout engine on GPU at Qwen2.5-VL-3B shapes (random weights, bf16 autocast): does
the CUDA-graph step compute what the eager step computes, and does teacher forcing (the learning forward) reproduce
the log-probs of the rollout?

- greedy, `--check-tokens` tokens, CUDA graph vs eager static step over the same cache size: the first step's logits
  difference, the first position where the greedy tokens part, and for each the largest |rollout log-prob - replay
  log-prob| before that position;
- a sampled rollout of the bench's shape (G=8 x 512, forced `<|lvr_start|>`, 8 latent steps) replayed with its
  recorded latents: the largest and mean |rollout log-prob - replay log-prob| (bf16 numerics on both sides).

GPU:       python bench/gpu/rollout_check.py
CPU check: python bench/gpu/rollout_check.py --tiny --max-new 12 --check-tokens 8

Writes $OUT/rollout_check.json and prints `BENCH {json}`.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
import torch

import train_common as C  # noqa: E402

from lvr import tokens as T  # noqa: E402
from lvr.train import rollout as RO  # noqa: E402
from lvr.train.decode_step import _DECODERS, free_static_decoders  # noqa: E402
from lvr.train.losses import completion_logps  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--max-new", type=int, default=512)
    ap.add_argument("--check-tokens", type=int, default=64)
    ap.add_argument("--grid", type=int, default=32)
    args = ap.parse_args()

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = C.build_model(args.tiny, dev).eval()
    rng = np.random.default_rng(0)
    g = 4 if args.tiny else args.grid
    ids = [T.IM_START_ID] + [int(x) for x in rng.integers(100, 150000, 8)] + [T.IM_END_ID, T.IM_START_ID, 872,
                                                                             T.VISION_START_ID] + \
        [T.IMAGE_PAD_ID] * (g * g // 4) + [T.VISION_END_ID] + [int(x) for x in rng.integers(100, 150000, 30)] + \
        [T.IM_END_ID, T.IM_START_ID, 77091, 198]
    prompt = RO.PromptInputs(torch.tensor([ids], device=dev),
                             torch.from_numpy(rng.standard_normal((g * g, 1176)).astype(np.float32)).to(dev),
                             torch.tensor([[1, g, g]], device=dev))
    G = args.generations
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if dev.type == "cuda" else \
        (lambda: torch.autocast("cpu", enabled=False))
    sampled = RO.SamplingConfig(0.9, 50, 1.0, 1.0, args.max_new, 8, force_first_token=T.LVR_START_ID)
    greedy = replace(sampled, temperature=1.0, top_k=1, max_new_tokens=args.check_tokens)

    def run(cfg: RO.SamplingConfig, seed: int = 0):
        with torch.no_grad(), autocast():
            return RO.rollout_groups(model, [prompt], G, cfg, torch.Generator(device=dev).manual_seed(seed))[0]

    def replay(ro: RO.Rollout, temperature: float) -> torch.Tensor:
        with torch.no_grad(), autocast():
            return completion_logps(model, prompt.ids, ro.completion_ids, prompt.pixel_values, prompt.grid,
                                    ro.latent_mask, ro.latents(), temperature=temperature).float()

    def first_logits(cfg: RO.SamplingConfig) -> torch.Tensor:
        """The logits of the first decode step (after `<|lvr_start|>`): one step of the engine."""
        run(replace(cfg, max_new_tokens=2))
        return _DECODERS[model].logits.clone()

    out: dict = {"bench": "rollout_check", "card": C.peak_flops(dev)[1], "shapes": "tiny" if args.tiny else
                 "qwen2.5-vl-3b", "generations": G, "check_tokens": args.check_tokens}
    graph_logits = first_logits(greedy)
    free_static_decoders()
    eager_logits = first_logits(replace(greedy, cuda_graphs=False))
    out["first_step_logits_max_abs_diff"] = float((graph_logits - eager_logits).abs().max())
    out["first_step_logits_scale"] = float(eager_logits.abs().max())
    free_static_decoders()
    ro_g = run(greedy)
    free_static_decoders()
    ro_e = run(replace(greedy, cuda_graphs=False))
    free_static_decoders()
    n = min(ro_g.completion_ids.shape[1], ro_e.completion_ids.shape[1])
    same = (ro_g.completion_ids[:, :n] == ro_e.completion_ids[:, :n]).all(0)
    split = int((~same).nonzero()[0]) if (~same).any() else n
    out["greedy_first_divergence"] = split
    for name, ro in (("graph", ro_g), ("eager", ro_e)):
        diff = (ro.sample_logps - replay(ro, 1.0)).abs()[:, :split]
        m = ro.completion_mask[:, :split]
        out[f"greedy_{name}_replay_max_abs_diff"] = float(diff[m].max()) if m.any() else 0.0

    ro = run(sampled, seed=1)
    diff = (ro.sample_logps - replay(ro, 0.9)).abs()[ro.completion_mask]
    out.update(sampled_tokens=int(ro.completion_mask.sum()), sampled_latent_inputs=int(ro.latent_mask.sum()),
               sampled_replay_max_abs_diff=float(diff.max()), sampled_replay_mean_abs_diff=float(diff.mean()))
    C.emit(out, "rollout_check.json")


if __name__ == "__main__":
    main()
