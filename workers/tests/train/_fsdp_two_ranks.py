"""Run by test_fsdp_sharding.py under `torch.distributed.run --nproc_per_node 2` (gloo, CPU): a few fp32 optimizer
steps with gradient accumulation through runtime.wrap / micro_step, as run_sft does, for each FSDP2 setting; counts
FSDP2's all-gathers and reduce-scatters per optimizer step. Rank 0 writes {variant: {...}} as JSON to argv[3]."""

from __future__ import annotations

import json
import sys

import torch
import torch.distributed as dist

from lvr.data.packing import collate
from lvr.data.records import validate_sft_record
from lvr.data.sft import build_sft_sample
from lvr.data.text import TextCodec
from lvr.train import runtime as R
from lvr.train.losses import SftObjective
from lvr.train.train_config import TrainConfig

from _train_helpers import load_model, sft_record, tiny_opts

COUNTS = {"all_gather": 0, "reduce_scatter": 0}


def counting(name: str, kind: str):
    fn = getattr(dist, name)

    def wrapped(*a, **kw):
        COUNTS[kind] += 1
        return fn(*a, **kw)

    setattr(dist, name, wrapped)


for name, kind in (("all_gather_single", "all_gather"), ("all_gather_into_tensor", "all_gather"),
                   ("reduce_scatter_single", "reduce_scatter"), ("reduce_scatter_tensor", "reduce_scatter")):
    if hasattr(dist, name):     # FSDP2 calls one of each pair, depending on the torch version
        counting(name, kind)

VARIANTS = {"old": (True, False), "no_reshard": (False, False), "defer_sync": (True, True), "new": (False, True)}
STEPS, ACCUM = 3, 2


def main() -> None:
    tiny_dir, data_dir, out = sys.argv[1:4]
    env = R.init_env()
    codec = TextCodec.from_dir(tiny_dir)
    recs = [validate_sft_record(sft_record(i, "a.png" if i % 2 == 0 else "b.png"), "sft.json", i, data_dir)
            for i in range(1, 5)]
    samples = [build_sft_sample(r, codec, data_dir, tiny_opts()) for r in recs]
    # every rank and micro-step sees its own batch, so the loss sequence depends on the gradient reduction
    batch = lambda step, micro: collate([samples[(step * ACCUM * 2 + micro * 2 + env.rank) % len(samples)]], "flat")
    result = {}
    for name, (reshard, defer) in VARIANTS.items():
        cfg = TrainConfig(run_id="t", stage="sft", model_uri="-", data_uri="-", checkpoint_uri="-", bundle_uri="-",
                          max_steps=10, learning_rate=1e-3, precision="fp32", grad_accum=ACCUM,
                          fsdp_reshard_after_forward=reshard, fsdp_defer_grad_sync=defer).resolved()
        model = load_model(tiny_dir).train()
        objective = R.wrap(SftObjective(model), model, cfg, env, torch.float32)
        optimizer = R.build_optimizer(model, cfg, env, no_decay_norm_bias=False)
        losses, per_step = [], []
        for step in range(STEPS):
            before = dict(COUNTS)
            total = torch.zeros(())
            for micro in range(ACCUM):
                with R.micro_step(objective, last=micro == ACCUM - 1):
                    loss = objective(batch(step, micro))["loss"] / ACCUM
                    loss.backward()
                total += loss.detach()
            grad_norm = R.clip_grad(objective, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            per_step.append({k: COUNTS[k] - before[k] for k in COUNTS})
            dist.all_reduce(total)
            losses.append(float(total) / env.world)
            per_step[-1]["grad_norm"] = grad_norm
        plan = objective.lvr_fsdp_plan
        result[name] = {"losses": losses, "counts": per_step[1:],   # step 0 includes FSDP2's lazy init
                        "plan": [plan.reshard_after_forward, plan.defer_grad_sync],
                        "layers": len(model.model.language_model.layers)}
    if env.rank == 0:
        with open(out, "w") as f:
            json.dump(result, f)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
