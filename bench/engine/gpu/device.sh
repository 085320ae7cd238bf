#!/usr/bin/env bash
# GPU machine entry of `npm run bench -- engine-gpu` (one call, both sides, time-boxed). Needs python3 with torch,
# transformers, onnx and onnxruntime (no internet) and Node: $NODE, or the runtime packed by
# scripts/gpu/pack-node-bench.mjs into .nodebin/ (unpacked by scripts/gpu/setup-node.sh).
#   BUDGET_S=280 LAYERS=8 VISION_LAYERS=4 OUT=/some/dir bash bench/engine/gpu/device.sh
# 1. prep.py builds a random checkpoint with Qwen2.5-VL-3B layer shapes (LAYERS decoder layers) and exports its fp16
#    bundle (int4 too when time allows); meanwhile torch_side.py builds the HF models and compiles their decode step;
# 2. once the export is done, torch_side.py times bandwidth, HF eager / static+compile decode and the PyTorch TTFT;
# 3. the bundled bench.js times the TS engine on WebGPU (device KV, host KV baseline, int4);
# With 8 layers the checkpoint and the fp16 export take ~80 s on an H200 host; below BUDGET_S=280 later parts (int4,
# the batch-8 compile, the PyTorch TTFT) are skipped and named in the JSON's errors.
# 4. combine.py writes OUT/engine_gpu.json and prints the final BENCH line.
set -uo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$root"
start=$(date +%s)
budget=${BUDGET_S:-280}
deadline=$((start + budget - 10))
OUT=${OUT:-/tmp/lvr-gpu-out}
WORK=${WORK:-/tmp/lvr-gpu-bench}
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1 CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}
PY=${LVR_PYTHON:-python3}
if [ -z "${NODE:-}" ]; then
  NODE=$(bash scripts/gpu/setup-node.sh) || exit 1
  APP=/tmp/lvr-node/app/bench.js
  [ -d /tmp/lvr-node/tokenizer ] && export LVR_QWEN_TOKENIZER_DIR=/tmp/lvr-node/tokenizer
else
  APP=${APP:-$root/.nodebin/app/bench.js}
fi
for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; do [ -f "$f" ] && export VK_DRIVER_FILES=$f; done
echo "[engine-gpu] setup done in $(($(date +%s) - start)) s" | tee "$OUT/device.log"
"$PY" bench/engine/gpu/prep.py "$WORK" --layers "${LAYERS:-8}" --vision-layers "${VISION_LAYERS:-4}" \
  --int4-before $((start + ${INT4_BEFORE_S:-60})) >"$OUT/prep.log" 2>&1 &
prep=$!
torch_end=$((deadline - ${TS_RESERVE_S:-70}))
timeout $((torch_end + 15 - start)) "$PY" bench/engine/gpu/torch_side.py "$WORK" --out "$OUT/torch.json" \
  --deadline $torch_end --compile-deadline $((start + ${COMPILE_B8_BEFORE_S:-50})) >"$OUT/torch.log" 2>&1 &
torch=$!
# The TS side starts once the fp16 bundle exists and the PyTorch timings are over (one GPU workload at a time).
while [ ! -f "$WORK/export.done" ] && kill -0 $prep 2>/dev/null; do sleep 1; done
echo "[engine-gpu] fp16 export done at $(($(date +%s) - start)) s" | tee -a "$OUT/device.log"
wait $torch
echo "[engine-gpu] torch side done at $(($(date +%s) - start)) s" | tee -a "$OUT/device.log"
cp "$WORK/prep.json" "$OUT/" 2>/dev/null
left=$((deadline + 5 - $(date +%s)))
[ $left -lt 10 ] && left=10
timeout $left "$NODE" "$APP" "$WORK" "$OUT/ts.json" "$deadline" >"$OUT/ts.log" 2>&1
echo "[engine-gpu] ts side done at $(($(date +%s) - start)) s (rc $?)" | tee -a "$OUT/device.log"
kill $prep 2>/dev/null
cp "$WORK/prep.json" "$OUT/" 2>/dev/null
# The raw onnxruntime trace is too large to bring back: keep its summary.
for f in "$OUT"/ort_profile_decoder_*.json; do
  [ -f "$f" ] || continue
  "$PY" bench/engine/gpu/profile_summary.py "$f" "$OUT/ort_profile_summary.json" && mv "$f" "$WORK/"
done
"$PY" bench/engine/gpu/combine.py "$OUT" "$WORK"
