#!/usr/bin/env bash
# One device call for issue #14's fused path (after the .ortpartN calls): prep (fp16 + int4, fused graphs), PyTorch
# side (static cache + compile at batch 1/8/32), the addon's raw step bench and the engine bench on the cuda EP.
# SHAPE=3b|7b (layer shapes, default 3b) and LAYERS (decoder layers, default 8) choose the model; SKIP_TORCH=1 leaves
# the PyTorch side out and LVR_BENCH_ONLY=NAME[,NAME] runs only those engine configurations (bench.ts). For deeper
# models: TORCH_DEADLINE_S / COMPILE_DEADLINE_S (seconds after the start; default 260 / 110) and TORCH_SKIP (parts
# torch_side.py leaves out, e.g. hf_eager_b1,hf_eager_b8,parity_fp16); TS_BUDGET_S: seconds for the engine bench
# (default 180). PROFILE_VISION=1 adds vision_profile.py on the fp16 bundle's vision graph (vision_profile.json).
set -u
root=$(cd "$(dirname "$0")/../../.." && pwd); cd "$root"
: "${OUT:?OUT (the results folder) is required}"; mkdir -p "$OUT"
source bench/engine/gpu/ort_env.sh
W=/tmp/w; rm -rf $W; mkdir -p $W; S=$(date +%s); export PYTHONUNBUFFERED=1
python3 bench/engine/gpu/prep.py $W --shape ${SHAPE:-3b} --layers ${LAYERS:-8} --vision-layers 4 \
  --int4-before $((S+${INT4_BEFORE_S:-150})) --fused --vision-floats > /tmp/prep.log 2>&1 &
prep=$!
[ -z "${SKIP_TORCH:-}" ] && python3 bench/engine/gpu/torch_side.py $W --out $OUT/torch.json --batch32 --deadline $((S+${TORCH_DEADLINE_S:-260})) \
  --compile-deadline $((S+${COMPILE_DEADLINE_S:-110})) --skip "${TORCH_SKIP:-}" > /tmp/torch.log 2>&1
echo "torch done $(( $(date +%s)-S )) s"; tail -2 /tmp/torch.log
while [ ! -f $W/export.done ] && kill -0 $prep 2>/dev/null; do sleep 1; done
[ -f $W/export.done ] || { echo "prep failed:"; tail -20 /tmp/prep.log; exit 1; }
timeout 120 $NODE bench/engine/gpu/fused_node.mjs $LVR_ORT_ADDON $W $OUT/node_fused.json $LVR_ORT_LIBRARY $CUDART > /tmp/node.log 2>&1
echo "addon bench rc $? at $(( $(date +%s)-S )) s"; tail -c 400 /tmp/node.log; echo
while kill -0 $prep 2>/dev/null; do sleep 1; done; cp $W/prep.json $OUT/
echo "prep done $(( $(date +%s)-S )) s"; tail -2 /tmp/prep.log
[ -f $W/bundle-int4/decoder_fused.onnx ] && timeout 60 python3 bench/engine/gpu/ep_profile.py \
  $W/bundle-int4/decoder_fused.onnx $OUT/int4_ep_profile.json 2>&1 | tail -c 1500
ts_budget=${TS_BUDGET_S:-180}
LVR_BENCH_EP=cuda timeout $((ts_budget+20)) $NODE ${APP:-/tmp/lvr-node/app/bench.js} $W $OUT/ts.json $(( $(date +%s)+ts_budget )) > /tmp/ts.log 2>&1
echo "engine bench rc $? at $(( $(date +%s)-S )) s"; tail -c 3000 /tmp/ts.log
[ -n "${PROFILE_VISION:-}" ] && timeout 120 python3 bench/engine/gpu/vision_profile.py $W/bundle-fp16 \
  $OUT/vision_profile.json 2>&1 | tail -c 1500
python3 bench/engine/gpu/parity_report.py $OUT
