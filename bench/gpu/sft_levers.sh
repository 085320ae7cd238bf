#!/usr/bin/env bash
# Stage-1 SFT at 3B shapes on 2 x H200 in ONE call (~3-4 min), full packs (>= 90% real tokens), every run with the
# same synthetic data recipe:
#   base        today's best configuration: FSDP2 bf16 params, varlen flash attention, pinned prefetch, regional
#               compile, checkpoint_ratio 0.5 (GPU 0) ...
#   new         ... beside it on GPU 1: + the step levers (--levers: host plan, fused linear CE, fused RoPE, fused
#               AdamW, no host sync in the step), checkpointing off (NEW_CKPT, default 0)
#   new (w2)    the new configuration on both GPUs (torchrun, FSDP2), token-balanced packs, scaling against `new`
#   7b          Qwen2.5-VL-7B shapes on one GPU: FSDP2 resharded after forward, full activation checkpointing,
#               fused AdamW, peak memory (GPU 0) ...
#   new_ckpt50  ... beside it on GPU 1: the levers at the baseline's checkpoint_ratio 0.5 (what the levers alone give)
# base and new record a one-step torch.profiler summary (top kernels, GPU idle share) and the host syncs of one step. Each run is capped (timeout)
# so one failure or OOM does not stop the others. All results go into $OUT/sft_levers.json (one file), the log tails
# into $OUT/sft_levers_logs.txt. CPU check: EXTRA="--tiny --max-packed-tokens 768 --attn flash_varlen_torch".
set -u
OUT=${OUT:-/tmp/bench-out}; export OUT; mkdir -p "$OUT"
cd "$(dirname "$0")"
RUNS=$(mktemp -d); LOGS=$(mktemp -d)
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True PYTHONUNBUFFERED=1
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-/tmp/lvr-inductor-cache}   # later runs reuse the kernels
W=${WARMUP:-2}; S=${STEPS:-5}; PY=${PYTHON:-python3}
BASE="--compile --ckpt-ratio 0.5"
NEW="--compile --levers --ckpt-ratio ${NEW_CKPT:-0}"
one() { local gpu=$1 tag=$2 limit=$3; shift 3
  CUDA_VISIBLE_DEVICES=$gpu OUT=$RUNS timeout "$limit" "$PY" train_sft.py --steps "$S" --warmup "$W" --tag "$tag" "$@" ${EXTRA:-} \
    > "$LOGS/$tag.txt" 2>&1; echo "RUN $tag rc=$? $(date +%T)"; }
echo "START $(date +%T) $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -1)"
one 0 base "${T1:-105}" $BASE --profile-steps 1 --sync-check &
one 1 new "${T1:-105}" $NEW --profile-steps 1 --sync-check &
wait
BASELINE=(); [ -f "$RUNS/train_sft_w1_new.json" ] && BASELINE=(--baseline "$RUNS/train_sft_w1_new.json")
OUT=$RUNS timeout "${T2:-80}" "$PY" -m torch.distributed.run --nproc_per_node 2 train_sft.py --steps "$S" --warmup "$W" --tag new $NEW \
  --balance-ranks "${BASELINE[@]}" ${EXTRA:-} > "$LOGS/new_w2.txt" 2>&1; echo "RUN new_w2 rc=$? $(date +%T)"
one 0 7b "${T3:-75}" --shapes 7b --host-plan --fused-ce --fused-adamw --no-step-sync --reshard --ckpt-ratio 1 \
  --steps 2 --warmup 1 &
one 1 new_ckpt50 "${T3:-75}" --compile --levers --ckpt-ratio 0.5 &
wait
"$PY" collect_runs.py "$RUNS" "$LOGS" sft_levers --strip train_sft_ --tail 40
"$PY" - <<'PY'
import json, os, pathlib
rows = json.loads((pathlib.Path(os.environ["OUT"]) / "sft_levers.json").read_text())
base = rows.get("w1_base")
for name, r in rows.items():
    if r.get("oom"):
        print("SUMMARY", json.dumps({"run": name, "oom": True, "peak_gib": r["peak_mem_gib"], "argv": r["argv"]}))
        continue
    p = r.get("profile") or {}
    print("SUMMARY", json.dumps({"run": name, "shapes": r["shapes"], "world": r["world"], "tok_s": round(r["tokens_per_s"]),
          "tok_s_gpu": round(r["tokens_per_s_per_gpu"]), "mfu": round(r["mfu"] or 0, 4), "peak_gib": round(r["peak_mem_gib"] or 0, 1),
          "fill": round(r["real_token_fraction"], 3), "step_s": round(r["step_s"], 3), "warmup_s": round(r["warmup_s"], 1),
          "vs_base": round(r["tokens_per_s_per_gpu"] / base["tokens_per_s_per_gpu"], 3) if base else None,
          "scaling": r.get("speedup"), "idle": p.get("gpu_idle_fraction"), "losses": [round(x, 4) for x in r["losses"]]}))
    for k in (p.get("top_kernels") or [])[:6]:
        print("  KERNEL", name, f'{k["share"]:.3f}', f'{k["ms"]:.1f}ms', k["calls"], k["name"][:80])
PY
echo "END $(date +%T)"
