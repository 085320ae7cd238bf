"""Stage-1 step levers (lvr.train.compute_levers.SftLevers) keep the training math on a tiny model: the host plan
(sync-free step) gives the loss and gradients of the device-side path, fused linear CE those of plain CE, fused RoPE
and fused AdamW the same losses, and token-balanced rank packs keep every sample exactly once."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from lvr import tokens as T
from lvr.data.packing import Prefetcher, balanced_rank_packs, collate
from lvr.data.records import validate_sft_record
from lvr.data.sft import Sample, build_sft_sample
from lvr.train import runtime as R
from lvr.train.attention import use_varlen
from lvr.train.host_plan import mrope_positions, plan_batch
from lvr.vision_inputs import VisionGeometry
from lvr.train.losses import SftObjective, fused_linear_cross_entropy, rope_positions
from lvr.train.spec import TrainConfig

from _train_helpers import load_model, sft_record, tiny_opts

CPU = R.Env(0, 1, 0, torch.device("cpu"))


@pytest.fixture(scope="module")
def batch(codec, data_dir):
    recs = [validate_sft_record(sft_record(i, img), "sft.json", i, str(data_dir))
            for i, img in ((1, "a.png"), (4, "b.png"), (2, "a.png"))]
    return collate([build_sft_sample(r, codec, str(data_dir), tiny_opts()) for r in recs], "flat")


def grads(model) -> dict:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def loss_and_grads(tiny_dir, batch, varlen: bool, **objective_kw):
    model = load_model(tiny_dir).train()
    if varlen:
        use_varlen(model)
    parts = SftObjective(model, **objective_kw)(batch)
    parts["loss"].backward()
    return parts, grads(model)


def test_fused_linear_cross_entropy_equals_plain_ce_value_and_gradients():
    torch.manual_seed(0)
    w = torch.randn(50, 16, requires_grad=True)
    h = torch.randn(37, 16, requires_grad=True)
    y = torch.randint(0, 50, (37,))
    ref = torch.nn.functional.cross_entropy((h @ w.t()).float(), y)
    g_ref = torch.autograd.grad(ref * 3.0, [h, w])
    for chunk in (8, 36, 37, 0):
        out = fused_linear_cross_entropy(w, h, y, chunk)
        g = torch.autograd.grad(out * 3.0, [h, w])     # a scaled upstream gradient reaches both inputs
        assert float(out.detach()) == pytest.approx(float(ref.detach()), rel=1e-6)
        for a, b in zip(g, g_ref):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        assert float(fused_linear_cross_entropy(w, h, y, 8)) == pytest.approx(float(ref), rel=1e-6)
    assert float(fused_linear_cross_entropy(w, h[:0], y[:0], 8)) == 0.0


def test_host_mrope_positions_equal_the_models_rope_index(tiny_dir, batch):
    model = load_model(tiny_dir)
    planned = plan_batch(batch, VisionGeometry.from_config(model.config.vision_config))["plan"]
    ref = rope_positions(model, batch["input_ids"], batch["image_grid_thw"], None, batch["seq_lens"],
                         batch["images_per_seq"])
    assert torch.equal(planned["positions"], ref)
    assert planned["cu_seqlens"].tolist() == [0, *np.cumsum(batch["seq_lens"]).tolist()]
    assert planned["max_seqlen"] == max(batch["seq_lens"])
    with pytest.raises(ValueError, match="image_pad"):
        mrope_positions(np.array([1, T.IMAGE_PAD_ID, 2]), [(1, 4, 4)], 2)


@pytest.mark.parametrize("varlen,self_feed", [(True, False), (False, False), (False, True)])
def test_host_plan_gives_the_device_path_loss_and_gradients(tiny_dir, batch, varlen, self_feed):
    model = load_model(tiny_dir)
    planned = plan_batch(batch, VisionGeometry.from_config(model.config.vision_config))
    assert planned["plan"]["n_lvr"] > 0 and planned["plan"]["n_ce"] > 0
    kw = {"lvr_self_feed": True, "train_vision": True} if self_feed else {}
    ref, g_ref = loss_and_grads(tiny_dir, batch, varlen, **kw)
    out, g = loss_and_grads(tiny_dir, planned, varlen, **kw)
    for k in ("loss", "loss_ce", "loss_lvr"):
        assert float(out[k]) == pytest.approx(float(ref[k]), rel=1e-5, abs=1e-7), k
    assert (out["n_ce"], out["n_lvr"], out["tokens"]) == (ref["n_ce"], ref["n_lvr"], ref["tokens"])
    assert set(g) == set(g_ref)
    for n in g_ref:
        torch.testing.assert_close(g[n], g_ref[n], rtol=1e-4, atol=1e-6, msg=n)


def test_pad_mode_batches_get_no_plan(codec, data_dir, tiny_dir):
    recs = [validate_sft_record(sft_record(i, "a.png"), "sft.json", i, str(data_dir)) for i in (1, 2)]
    padded = collate([build_sft_sample(r, codec, str(data_dir), tiny_opts()) for r in recs], "pad")
    assert "plan" not in plan_batch(padded, VisionGeometry.from_config(load_model(tiny_dir).config.vision_config))


def test_fused_ce_in_sft_loss_gives_the_same_loss_and_gradients(tiny_dir, batch):
    ref, g_ref = loss_and_grads(tiny_dir, batch, True)
    for chunk in (0, 3):
        out, g = loss_and_grads(tiny_dir, batch, True, fused_ce=True, ce_chunk_rows=chunk)
        assert float(out["loss"]) == pytest.approx(float(ref["loss"]), rel=1e-6)
        for n in g_ref:    # the tied embedding / LM head weight gets both contributions
            torch.testing.assert_close(g[n], g_ref[n], rtol=1e-4, atol=1e-6, msg=n)


def test_fused_rope_keeps_the_loss(tiny_dir, batch):
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as M

    saved = {k: getattr(M, k) for k in ("apply_rotary_pos_emb", "apply_rotary_pos_emb_vision")}
    ref, _ = loss_and_grads(tiny_dir, batch, True)
    try:
        R.fuse_rope(backend="eager")     # dynamo capture without a C++ toolchain
        assert M.apply_rotary_pos_emb is not saved["apply_rotary_pos_emb"]
        R.fuse_rope(backend="eager")     # idempotent
        out, _ = loss_and_grads(tiny_dir, batch, True)
    finally:
        for k, v in saved.items():
            setattr(M, k, v)
        M.lvr_fused_rope = False
    assert float(out["loss"]) == pytest.approx(float(ref["loss"]), rel=1e-6)


def test_fused_adamw_keeps_the_loss_sequence(tiny_dir, batch):
    cfg = TrainConfig(run_id="t", stage="sft", model_uri="-", data_uri="-", checkpoint_uri="-", bundle_uri="-",
                      max_steps=10, learning_rate=1e-3).resolved()
    runs = []
    for fused in (False, True):
        model = load_model(tiny_dir).train()
        objective = SftObjective(model)
        opt = R.build_optimizer(model, cfg, CPU, no_decay_norm_bias=False, fused=fused)
        assert opt.defaults["fused"] is (True if fused else None)
        losses = []
        for _ in range(3):
            loss = objective(batch)["loss"]
            loss.backward()
            R.clip_grad_tensor(objective, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(float(loss))
        runs.append(losses)
    assert runs[0][-1] < runs[0][0]
    assert runs[1] == pytest.approx(runs[0], rel=1e-5)


def test_levers_resolve_on_for_cuda_off_for_cpu_and_follow_explicit_fields():
    cfg = types.SimpleNamespace(packing_mode="flat")
    assert R.SftLevers.from_config(cfg, CPU) == R.SftLevers()
    gpu = R.Env(0, 1, 0, torch.device("cuda"))
    assert R.SftLevers.from_config(cfg, gpu) == R.SftLevers(True, True, True, True)
    explicit = types.SimpleNamespace(packing_mode="flat", host_plan=False, fused_ce=True, fused_rope=None,
                                     fused_adamw=False)
    assert R.SftLevers.from_config(explicit, CPU) == R.SftLevers(False, True, False, False)
    assert not R.SftLevers.from_config(types.SimpleNamespace(packing_mode="pad"), gpu).host_plan


class _Groups:
    def __init__(self, groups):
        self.groups, self.pos = list(groups), 0

    def __next__(self):
        self.pos += 1
        return self.groups[self.pos - 1]

    def state(self) -> dict:
        return {"pos": self.pos}


def test_prefetcher_runs_the_plan_in_its_thread(tiny_dir, codec, data_dir):
    recs = [validate_sft_record(sft_record(i, "a.png"), "sft.json", i, str(data_dir)) for i in (1, 2)]
    group = [build_sft_sample(r, codec, str(data_dir), tiny_opts()) for r in recs]
    spec = VisionGeometry.from_config(load_model(tiny_dir).config.vision_config)
    pf = Prefetcher(_Groups([group, group]), "flat", prepare=lambda b: plan_batch(b, spec))
    try:
        got = pf.next()
    finally:
        pf.close()
    assert got["plan"]["tokens"] == sum(len(s) for s in group)
    assert pf.state() == {"pos": 1}


def _sample(n: int, key: int) -> Sample:
    return Sample([1] * n, [-100] * n, np.zeros((0, 4), np.float32), [], [], key=(0, key))


def test_balanced_rank_packs_use_every_sample_once_and_even_out_tokens():
    rng = np.random.default_rng(0)
    pool = [_sample(int(n), i) for i, n in enumerate(rng.integers(300, 3000, 40))]
    packs, rest = balanced_rank_packs(pool, 2, 16384)
    keys = [s.key for p in packs for s in p] + [s.key for s in rest]
    assert sorted(keys) == sorted(s.key for s in pool)                      # each sample exactly once
    sizes = [sum(len(s) for s in p) for p in packs]
    assert all(n <= 16384 for n in sizes) and min(sizes) >= 0.9 * 16384
    assert max(sizes) - min(sizes) <= max(len(s) for s in pool)
    one, rest1 = balanced_rank_packs(pool[:3], 4, 16384)                    # fewer samples than ranks
    assert sorted(len(p) for p in one) == [0, 1, 1, 1] and rest1 == []
    with_long = [_sample(20000, 99)] + pool[:2]                             # a sample that fits no pack stays
    packs, rest = balanced_rank_packs(with_long, 2, 16384)
    assert [s.key for s in rest] == [(0, 99)]


def test_fused_ce_and_host_plan_with_an_untied_lm_head_give_the_same_gradients():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench" / "gpu"))
    from lvr.model import LVRForConditionalGeneration
    from lvr.tiny import tiny_config
    import train_common as C

    def run(levers: bool):
        torch.manual_seed(0)
        model = LVRForConditionalGeneration(tiny_config(tie=False)).train()
        use_varlen(model)
        assert model.lm_head.weight is not model.get_input_embeddings().weight
        b = collate(C.full_packs(1, True, 768)[0], "flat")
        b = plan_batch(b, VisionGeometry.from_config(model.config.vision_config)) if levers else b
        SftObjective(model, fused_ce=levers, ce_chunk_rows=5)(b)["loss"].backward()
        return grads(model)

    ref, got = run(False), run(True)
    assert set(got) == set(ref)
    for n in ref:
        torch.testing.assert_close(got[n], ref[n], rtol=1e-4, atol=1e-6, msg=n)


_LEVERS_ON = """
import atexit, json, sys
from lvr.train import compute_levers as L, host_plan as H
# the worker with the levers that run on a CPU (fused RoPE needs a compiler toolchain for inductor)
L.SftLevers.from_config = classmethod(lambda cls, cfg, env: cls(host_plan=True, fused_ce=True, fused_adamw=True))
planned = []
plan = H.plan_batch
H.plan_batch = lambda b, spec: planned.append(1) or plan(b, spec)
atexit.register(lambda: print(json.dumps({"planned": len(planned)}), flush=True))
from lvr.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def test_worker_with_the_levers_keeps_the_loss_sequence(tiny_dir, data_dir, tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from _train_helpers import TINY_PIXELS, spec

    repo = Path(__file__).resolve().parents[3]
    env = {k: v for k, v in os.environ.items() if k != "LVR_KAFKA_BROKERS"}
    env.update(PYTHONPATH=str(repo / "workers"), LVR_CACHE_DIR=str(tmp_path / "cache"))
    runs = []
    for name, head in (("plain", ["-m", "lvr"]), ("levers", ["-c", _LEVERS_ON])):
        msg = spec(f"lev-{name}", "sft", str(tiny_dir), str(data_dir / "sft.json"), str(tmp_path / name / "ck"),
                   str(tmp_path / name / "bundle"), every=10, maxSteps=3, gradientAccumulationSteps=2)
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(msg))
        r = subprocess.run([sys.executable, *head, "sft", "--spec", str(path), *TINY_PIXELS,
                            "--set", "learning_rate=1e-3"], env=env, cwd=repo, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        events = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
        runs.append([e["data"]["loss"] for e in events if e.get("type") == "Progress"])
        if name == "levers":   # every micro-batch the loop consumed went through the host plan
            assert next(e["planned"] for e in events if "planned" in e) >= 3 * 2
    assert len(runs[0]) == 3 and runs[0][-1] != runs[0][0]
    assert runs[1] == pytest.approx(runs[0], rel=1e-4)


def test_set_overrides_turn_each_lever_off_on_a_gpu_run():
    from lvr.train.overrides import apply_overrides, parse_sets
    from lvr.train.train_config import TrainConfig

    cfg = TrainConfig(run_id="levers", stage="sft", model_uri="m", data_uri="d", checkpoint_uri="c", bundle_uri="b")
    off = apply_overrides(cfg, parse_sets(["host_plan=false", "fused_ce=false", "fused_rope=false",
                                           "fused_adamw=false"]))
    gpu = R.Env(0, 1, 0, torch.device("cuda"))
    assert R.SftLevers.from_config(cfg, gpu) == R.SftLevers(True, True, True, True)
    assert R.SftLevers.from_config(off, gpu) == R.SftLevers(False, False, False, False)
