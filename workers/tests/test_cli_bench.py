"""The worker CLI surface and the GPU bench script's CPU (tiny) mode."""

import json
import os
import subprocess
import sys

import pytest

from _lvr_helpers import REPO, run_cli


def test_cli_lists_subcommands_and_rejects_bad_precision():
    proc = run_cli("--help")
    for sub in ("export", "verify", "golden"):
        assert sub in proc.stdout
    bad = run_cli("export", "tiny:0", "/tmp/never", "--precision", "int8", check=False)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_export_of_a_folder_without_config_fails_clearly(tmp_path):
    proc = run_cli("export", str(tmp_path), str(tmp_path / "out"), check=False)
    assert proc.returncode == 3 and "not a Hugging Face checkpoint folder" in proc.stderr


def test_gpu_bench_script_runs_in_tiny_cpu_mode(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path))
    proc = subprocess.run([sys.executable, str(REPO / "bench/gpu/export_3b.py"), "--tiny", "--device", "cpu"],
                          cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("BENCH ")
    res = json.loads(last[len("BENCH "):])
    assert res == json.loads((tmp_path / "export_3b.json").read_text())
    assert res["precision"] == "fp16" and res["passed"] is True and res["bundle_bytes"] > 0
    assert res["errors"]["logits"]["max_rel"] < res["bound_max_rel"]


def _bench(script: str, tmp_path, *args: str) -> dict:
    env = dict(os.environ, OUT=str(tmp_path))
    proc = subprocess.run([sys.executable, str(REPO / "bench/gpu" / script), "--tiny", *args], cwd=REPO, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("BENCH ")
    return json.loads(last[len("BENCH "):])


def test_grpo_bench_rollouts_run_latent_blocks_and_report_their_share(tmp_path):
    res = _bench("train_grpo.py", tmp_path, "--steps", "1", "--warmup", "0", "--max-new", "10", "--generations", "2",
                 "--micro-batch", "2", "--lvr-steps", "3")
    assert res["forced_lvr_start"] is True
    assert res["latent_inputs"] >= 2 * 3  # each completion starts one block of 3 latent inputs
    assert res["latent_share"] == res["latent_inputs"] / res["completion_steps"] and 0 < res["latent_share"] < 1
    # both rollout engines timed in the one run, the ratio from their own figures; the static engine's greedy
    # tokens do not depend on its CUDA graph (none on CPU: the same eager step twice)
    base, new = res["dynamic_baseline"], res["static"]
    assert base["config"] == "dynamic" and new["config"] == "static" and base["latent_inputs"] >= 2 * 3
    assert res["rollout_speedup"] == base["rollout_s"] / new["rollout_s"]
    assert res["graph_equals_eager"] is True and 0 <= res["greedy_agreement_with_dynamic"] <= 1


def test_sft_bench_packs_are_full_and_report_their_real_token_fraction(tmp_path):
    full = _bench("train_sft.py", tmp_path, "--steps", "1", "--warmup", "0", "--max-packed-tokens", "768")
    assert full["packs"] == "full" and full["real_token_fraction"] >= 0.9
    assert full["tokens_per_s"] * full["step_s"] == pytest.approx(768 * full["real_token_fraction"])
    upstream = _bench("train_sft.py", tmp_path, "--steps", "1", "--warmup", "0", "--max-packed-tokens", "768",
                      "--packs", "upstream")
    assert upstream["instances_per_step"] <= 4 and upstream["real_token_fraction"] < full["real_token_fraction"]


def test_sft_bench_levers_keep_the_losses_and_profile_the_step(tmp_path):
    common = ("--steps", "2", "--warmup", "1", "--max-packed-tokens", "768", "--attn", "flash_varlen_torch")
    base = _bench("train_sft.py", tmp_path, *common)
    new = _bench("train_sft.py", tmp_path, *common, "--levers", "--profile-steps", "1", "--tag", "levers")
    assert all(new["levers"][k] for k in ("host_plan", "fused_ce", "fused_rope", "fused_adamw", "no_step_sync"))
    assert new["losses"] == pytest.approx(base["losses"], rel=1e-5)
    prof = new["profile"]
    assert prof["wall_s"] > 0 and prof["gpu_busy_s"] == 0.0 and prof["top_kernels"] == []   # CPU: no kernels
    assert json.loads((tmp_path / "train_sft_w1_levers.json").read_text())["profile"] == prof


def test_grpo_bench_times_several_prompts_a_step_and_splits_the_rollout(tmp_path):
    res = _bench("train_grpo.py", tmp_path, "--only-compiled", "--prompts", "2", "--check-tokens", "0", "--steps", "1",
                 "--warmup", "0", "--max-new", "6", "--generations", "2", "--micro-batch", "2", "--lvr-steps", "2")
    assert res["prompts_per_step"] == 2
    assert res["latent_inputs"] >= 2 * 2 * 2      # both prompts' completions ran their latent blocks
    split = res["rollout_split"]
    assert split["prefill_s"] > 0 and split["vision_s"] > 0 and split["text_s"] > 0
    assert split["loop_s"] == pytest.approx(res["rollout_s"] - split["refresh_s"] - split["prefill_s"])


def test_sft_bench_packs_from_the_worker_stream(tmp_path):
    res = _bench("train_sft.py", tmp_path, "--steps", "1", "--warmup", "0", "--max-packed-tokens", "768",
                 "--stream", "worker")
    assert res["levers"]["stream"] == "worker" and res["real_token_fraction"] >= 0.9
    assert res["rank_imbalance"] == 1.0 and len(res["rank_tokens_per_step"]) == 1   # one rank
    assert res["rank_tokens_per_step"][0][0] == pytest.approx(res["real_token_fraction"] * 768)
