#!/usr/bin/env bash
# Stage-1 SFT at 3B shapes on 2 x H200 in ONE call (~6 min): the worker's own training stream (lvr.data.packing:
# BalancedStream, token-balanced across ranks, and the per-rank PackedStream) against the bench's packer, all with the
# step levers of sft_levers.sh (--compile --levers, no activation checkpointing) and the same synthetic records:
#   w1_bench / w1_worker   one GPU each, side by side: the bench's full packs / the worker's stream at world 1
#   w2_balanced            both GPUs (torchrun, FSDP2): the worker's BalancedStream, scaling against w1_worker
#   w2_per_rank            both GPUs: the worker's per-rank stream (balance_ranks off), scaling against w1_worker
#   w2_bench               both GPUs: the bench's balanced packs (the figure of sft_levers.sh), against w1_bench
# Every run reports MFU, tokens/s per GPU, fill, peak memory and `rank_imbalance` (sum over steps of the fullest
# rank's real tokens / the mean rank's). Results: $OUT/sft_stream.json, $OUT/sft_stream_logs.txt.
# CPU check: EXTRA="--tiny --max-packed-tokens 768 --attn flash_varlen_torch" NEW="" bash bench/gpu/sft_stream.sh
set -u
OUT=${OUT:-/tmp/bench-out}; export OUT; mkdir -p "$OUT"
cd "$(dirname "$0")"
RUNS=$(mktemp -d); LOGS=$(mktemp -d)
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True PYTHONUNBUFFERED=1
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-/tmp/lvr-inductor-cache}
W=${WARMUP:-2}; S=${STEPS:-5}; PY=${PYTHON:-python3}
NEW=${NEW---compile --levers --ckpt-ratio 0}
# shellcheck disable=SC2086
one() { local gpu=$1 tag=$2; shift 2
  CUDA_VISIBLE_DEVICES=$gpu OUT=$RUNS timeout "${T1:-120}" "$PY" train_sft.py --steps "$S" --warmup "$W" --tag "$tag" \
    $NEW "$@" ${EXTRA:-} > "$LOGS/$tag.txt" 2>&1; echo "RUN $tag rc=$? $(date +%T)"; }
# shellcheck disable=SC2086
two() { local tag=$1; shift
  OUT=$RUNS timeout "${T2:-100}" "$PY" -m torch.distributed.run --nproc_per_node 2 train_sft.py --steps "$S" \
    --warmup "$W" --tag "$tag" $NEW "$@" ${EXTRA:-} > "$LOGS/$tag.txt" 2>&1; echo "RUN $tag rc=$? $(date +%T)"; }
echo "START $(date +%T) $(nvidia-smi --query-gpu=name --format=csv,noheader | paste -sd,)"
one 0 bench & one 1 worker --stream worker & wait
two balanced --stream worker --balance-ranks --baseline "$RUNS/train_sft_w1_worker.json"
two per_rank --stream worker --baseline "$RUNS/train_sft_w1_worker.json"
two bench --balance-ranks --baseline "$RUNS/train_sft_w1_bench.json"
"$PY" collect_runs.py "$RUNS" "$LOGS" sft_stream --strip train_sft_ --tail 30
"$PY" - <<'PY'
import json, os, pathlib
rows = json.loads((pathlib.Path(os.environ["OUT"]) / "sft_stream.json").read_text())
for name, r in rows.items():
    print("SUMMARY", json.dumps({"run": name, "stream": r["levers"].get("stream"), "world": r["world"],
          "tok_s_gpu": round(r["tokens_per_s_per_gpu"]), "mfu": round(r["mfu"] or 0, 4),
          "peak_gib": round(r["peak_mem_gib"] or 0, 1), "fill": round(r["real_token_fraction"], 3),
          "imbalance": round(r["rank_imbalance"], 4), "step_s": round(r["step_s"], 3), "scaling": r.get("speedup"),
          "losses": [round(x, 4) for x in r["losses"]]}))
PY
echo "END $(date +%T)"
