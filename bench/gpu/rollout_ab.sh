#!/usr/bin/env bash
# GRPO_latent step at 3B shapes, two trees in ONE call: this checkout ("new") and an older one ("old": OLD_TREE holds
# its workers/ and bench/gpu/) time the compiled static rollout engine (the worker's default on CUDA) with the same
# bench script (train_grpo.py --only-compiled, copied into the old tree). On 2 GPUs (~5 min) they run side by side,
# then again with the GPUs swapped, so that neither side has the faster card; on 1 GPU (~7 min) one after the other,
# old-new-new-old (ROUNDS=1: old-new). The new tree's last run also profiles one rollout. Results: $OUT/rollout_ab.json (every run's JSON by label), $OUT/rollout_ab_logs.txt.
#   bash bench/gpu/rollout_ab.sh OLD_TREE          (make OLD_TREE with: git archive REV workers bench/gpu | tar -x -C OLD_TREE)
# Knobs: STEPS (timed steps per run, 5), LIMIT (seconds per run, 200), ROUNDS (1 GPU: 2 or 1), PYTHON.
set -u
OLD=$(cd "${1:?usage: rollout_ab.sh OLD_TREE}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-/tmp/bench-out}; export OUT; mkdir -p "$OUT"
RUNS=$(mktemp -d); LOGS=$(mktemp -d)
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True PYTHONUNBUFFERED=1
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-/tmp/lvr-inductor-cache}
PY=${PYTHON:-python3}
cp "$HERE/train_grpo.py" "$HERE/train_common.py" "$OLD/bench/gpu/"
one() { local gpu=$1 tree=$2 label=$3; shift 3
  CUDA_VISIBLE_DEVICES=$gpu OUT=$RUNS timeout "${LIMIT:-200}" "$PY" "$tree/bench/gpu/train_grpo.py" --only-compiled \
    --steps "${STEPS:-5}" --label "$label" --out-name "$label.json" "$@" > "$LOGS/$label.txt" 2>&1
  echo "RUN $label rc=$? $(date +%T)"; }
echo "START $(date +%T) $(nvidia-smi --query-gpu=name --format=csv,noheader | paste -sd,)"
NEW_TREE=$(cd "$HERE/../.." && pwd)
if [ "$(nvidia-smi -L | wc -l)" -ge 2 ]; then
  one 0 "$OLD" old_gpu0 & one 1 "$NEW_TREE" new_gpu1 & wait
  one 1 "$OLD" old_gpu1 & one 0 "$NEW_TREE" new_gpu0 --profile-rollout & wait
elif [ "${ROUNDS:-2}" = 1 ]; then
  one 0 "$OLD" old_a; one 0 "$NEW_TREE" new_a --profile-rollout
else
  one 0 "$OLD" old_a; one 0 "$NEW_TREE" new_a; one 0 "$NEW_TREE" new_b --profile-rollout; one 0 "$OLD" old_b
fi
"$PY" "$HERE/collect_runs.py" "$RUNS" "$LOGS" rollout_ab --tail 30
"$PY" - <<'PY'
import json, os, pathlib
rows = json.loads((pathlib.Path(os.environ["OUT"]) / "rollout_ab.json").read_text())
for name, r in rows.items():
    print("SUMMARY", json.dumps({"run": name, "rollout_s": round(r["rollout_s"], 3), "learn_s": round(r["learn_s"], 3),
          "share": round(r["rollout_fraction"], 4), "tok_s": round(r["decode_tokens_per_s"]),
          "rollout_each": [round(x, 3) for x in r.get("rollout_s_each", [])],
          "learn_each": [round(x, 3) for x in r.get("learn_s_each", [])], "split": r.get("rollout_split"),
          "peak_gib": round(r["peak_mem_gib"] or 0, 1), "greedy_prefix_vs_sdpa": r.get("greedy_equal_prefix_with_sdpa")}))
    prof = r.get("rollout_profile")
    if prof:
        print("PROFILE", name, prof["profiled_wall_ms"], prof["kernel_ms_sum"])
        for k in prof["top_device"][:14]:
            print("  KERNEL", f'{k["self_device_ms"]:.1f}ms', k["calls"], k["name"][:90])
PY
echo "END $(date +%T)"
