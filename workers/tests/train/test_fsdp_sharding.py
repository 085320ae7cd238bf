"""FSDP2 sharding settings (TrainConfig.fsdp_reshard_after_forward / fsdp_defer_grad_sync): they reach fully_shard
and the micro-step loop, keep the fp32 loss sequence of two gloo ranks, and cut the collectives as documented;
the auto choice follows the memory estimate of runtime.fsdp_plan."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from lvr.train import runtime as R
from lvr.train.errors import ConfigError
from lvr.train.overrides import coerce
from lvr.train.train_config import TrainConfig

REPO = Path(__file__).resolve().parents[3]
GIB = 2**30


def cfg_(**kw) -> TrainConfig:
    return TrainConfig(run_id="t", stage="sft", model_uri="-", data_uri="-", checkpoint_uri="-", bundle_uri="-",
                       max_steps=10, **kw).resolved()


def test_two_gloo_ranks_same_losses_fewer_collectives(tiny_dir, data_dir, tmp_path):
    out = tmp_path / "fsdp.json"
    env = dict(os.environ, PYTHONPATH=str(REPO / "workers"), OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(Path(__file__).with_name("_fsdp_two_ranks.py")), str(tiny_dir), str(data_dir), str(out)],
                       env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    old, new = res["old"], res["new"]
    assert old["plan"] == [True, False] and new["plan"] == [False, True]   # the settings reached the wrapped module
    assert old["losses"][-1] < old["losses"][0]                             # it trains
    for name in ("no_reshard", "defer_sync", "new"):
        assert res[name]["losses"] == pytest.approx(old["losses"], rel=1e-5, abs=1e-5), name
    # per optimizer step of 2 micro-steps; G FSDP groups = decoder layers + the root
    L = old["layers"]
    G = L + 1
    expect = {"old": (2 * (G + L), 2 * G),     # layers gathered in forward and again in backward; root kept
              "no_reshard": (G, 2 * G),        # gathered once, kept through both micro-steps
              "defer_sync": (2 * (G + L), G),  # one reduce-scatter per group per optimizer step
              "new": (G, G)}
    for name, (ag, rs) in expect.items():
        for c in res[name]["counts"]:
            assert (c["all_gather"], c["reduce_scatter"]) == (ag, rs), (name, c)


def test_settings_reach_fully_shard(monkeypatch, tiny_dir):
    from torch.distributed import fsdp as F

    from _train_helpers import load_model
    from lvr.train.losses import SftObjective

    calls = []
    monkeypatch.setattr(F, "fully_shard", lambda module, **kw: calls.append((module, kw)) or module)
    two = R.Env(0, 2, 0, torch.device("cpu"))
    for setting, want in ((True, True), (False, False), (None, True)):     # CPU/gloo auto: FSDP2's default
        calls.clear()
        model = load_model(tiny_dir)
        obj = R.wrap(SftObjective(model), model, cfg_(fsdp_reshard_after_forward=setting), two, torch.float32)
        layers = list(model.model.language_model.layers)
        assert [m for m, _ in calls] == layers + [obj]
        assert [kw["reshard_after_forward"] for _, kw in calls] == [want] * len(layers) + [False]   # root: never
        assert obj.lvr_fsdp_plan.reshard_after_forward is want
        assert calls[0][1]["mp_policy"].reduce_dtype == torch.float32


def fake_model(trainable: float, frozen: float):
    p = lambda n, g: torch.nn.Parameter(torch.empty(int(n), device="meta"), requires_grad=g)
    params = [p(trainable, True), p(frozen, False)]
    return SimpleNamespace(parameters=lambda: iter(params))


@pytest.mark.parametrize("model,card_gib,world,local,want", [
    ((3.09e9, 0.67e9), 139.8, 2, 2, (True, True)),     # 3B on 2 x H200: resharded (measured faster), one reduce-scatter
    ((3.09e9, 0.67e9), 79.2, 2, 2, (True, True)),      # 2 x H100: unsharded fp32 grads still fit half the card
    ((3.09e9, 0.67e9), 79.2, 8, 8, (True, True)),
    ((7.62e9, 0.67e9), 79.2, 8, 8, (True, False)),     # 7B on 8 x 80 GB: unsharded grads don't fit
    ((7.62e9, 0.67e9), 139.8, 2, 2, (True, False)),    # 7B on 2 x H200: sharded state alone is most of the budget
    ((3.09e9, 0.67e9), 139.8, 16, 8, (True, False)),   # two nodes: FSDP2's defaults
    ((3.09e9, 0.67e9), 139.8, 16, 16, (True, False)),  # more than 8 ranks
])
def test_auto_plan_follows_memory(monkeypatch, model, card_gib, world, local, want):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(local))
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: SimpleNamespace(total_memory=card_gib * GIB))
    env = R.Env(0, world, 0, torch.device("cuda", 0))
    plan = R.fsdp_plan(cfg_(), env, fake_model(*model), torch.bfloat16)
    assert (plan.reshard_after_forward, plan.defer_grad_sync) == want
    forced = R.fsdp_plan(cfg_(fsdp_reshard_after_forward=not want[0], fsdp_defer_grad_sync=not want[1]), env,
                         fake_model(*model), torch.bfloat16)
    assert (forced.reshard_after_forward, forced.defer_grad_sync) == (not want[0], not want[1])


def test_plan_at_world_one_on_cpu_and_for_grpo(monkeypatch):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: SimpleNamespace(total_memory=139.8 * GIB))
    m = fake_model(1e6, 1e5)
    one, cpu2 = R.Env(0, 1, 0, torch.device("cpu")), R.Env(0, 2, 0, torch.device("cpu"))
    assert R.fsdp_plan(cfg_(), one, m, torch.float32) == R.FsdpPlan(False, False)     # world 1: no reshard, no deferral
    assert R.fsdp_plan(cfg_(fsdp_reshard_after_forward=True), one, m, torch.float32).reshard_after_forward
    assert R.fsdp_plan(cfg_(), cpu2, m, torch.float32) == R.FsdpPlan(True, False)     # gloo: FSDP2's defaults
    grpo = TrainConfig(run_id="t", stage="grpo", model_uri="-", data_uri="-", checkpoint_uri="-", bundle_uri="-")
    h200 = R.Env(0, 2, 0, torch.device("cuda", 0))
    assert R.fsdp_plan(grpo, h200, m, torch.bfloat16) == R.FsdpPlan(True, False)     # GRPO: FSDP2's defaults
    assert R.fsdp_plan(cfg_(), h200, m, torch.bfloat16) == R.FsdpPlan(True, True)    # (tiny model, same card)
    assert coerce("fsdp_reshard_after_forward", "false") is False
    assert coerce("fsdp_defer_grad_sync", "true") is True
    with pytest.raises(ConfigError):
        coerce("fsdp_reshard_after_forward", "2")
