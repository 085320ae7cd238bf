#!/usr/bin/env bash
# What one call on the lent GPU machine runs (it has PyTorch but no Node): unpack the data made here by
# `reproduce.sh data` (carried as demo-work/data.tar.gz), run the sweep (train_and_evaluate.sh), then put under $OUT
# the results and logs and the model to ship and its plain baseline (b) (exported and scored with the evaluator back
# here), each a model folder with fp16 weights, gzipped and split below the 16 MiB return limit (pack). PHASE=stage1 packs the chosen (a) and (b) instead;
# PHASE=grpo trains (c) from the carried demo-work/from/<a> (a packed (a) with its tokenizer, and the stage-1
# validation scores eval-validation-a.json beside it) and packs (c).
# PHASE=chain runs scripts/demo/lvr_chain.sh's phases CHAIN (e.g. "b" or "ab c") on the single level
# (DATA_TAR=data-single.tar.gz from `reproduce.sh pack single`), starting from the model folders carried as
# demo-work/from/b (for ab) and demo-work/from/a (for c), and packs the models named in PACK (name:fp32 or name:fp16,
# default "b:fp32": fp32 for a model a later call continues).
set -uo pipefail
cd "$(dirname "$0")/../.."
W=${DEMO_WORK:-demo-work}
mkdir -p $W "$OUT"
. scripts/gpu/worker-deps.sh || exit 1  # jsonschema from the carried .whl/ (scripts/gpu/fetch-worker-wheels.sh)
tar xzf $W/${DATA_TAR:-data.tar.gz} -C $W
if [ "${PHASE:-all}" = grpo ]; then
  mkdir -p $W/results && cp $W/from/eval-validation-a.json $W/results/
  export GRPO_FROM=$(ls -d $W/from/*/ | head -1); GRPO_FROM=${GRPO_FROM%/}
fi
export LVR_QWEN_TOKENIZER_DIR=$PWD/$W/data/qwen-tokenizer PYTHONPATH=$PWD/workers:$PWD/scripts/demo${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
pack() { # run-dir out-name [fp16|fp32]: the run's last checkpointed model folder as $OUT/out-name.tgz.part-*
  local step dir=$W/pack/$2
  step=$(ls -d $1/checkpoints/step-* 2>/dev/null | sed 's/.*step-//' | sort -n | tail -1)
  [ -n "$step" ] || { echo "no checkpoint for $1"; return 0; }
  rm -rf $dir && mkdir -p $dir
  cp $1/checkpoints/step-$step/model/*.json $1/checkpoints/step-$step/model/*.jinja $dir/ 2>/dev/null
  if [ "${3:-fp16}" = fp32 ]; then
    cp $1/checkpoints/step-$step/model/model.safetensors $dir/
  else
    python3 scripts/demo/half_weights.py $1/checkpoints/step-$step/model/model.safetensors $dir/model.safetensors
  fi
  echo "$1 step $step" > $dir/SOURCE
  tar czf - -C $W/pack $2 | split -b 15m - "$OUT/$2.tgz.part-"
}
if [ "${PHASE:-all}" = chain ]; then
  [ -d $W/from/b ] && export B_MODEL=$PWD/$W/from/b
  [ -d $W/from/a ] && export A_MODEL=$PWD/$W/from/a
  t0=$(date +%s)
  EXPORT=0 RESULTS=$W/chain/results scripts/demo/lvr_chain.sh ${CHAIN:-b} 2>&1 | tee "$OUT/run.log"
  rc=${PIPESTATUS[0]}
  echo "lvr_chain rc=$rc wall=$(( $(date +%s) - t0 ))s" | tee -a "$OUT/run.log"
  tar czf "$OUT/results.tar.gz" -C $W/chain results $(cd $W/chain && ls runs/*/stderr.log runs/*/eval.log 2>/dev/null)
  for item in ${PACK:-b:fp32}; do pack $W/chain/runs/${item%%:*} ${item%%:*} ${item#*:}; done
  ls -la "$OUT"
  exit $rc
fi
mkdir -p $W/logs
nvidia-smi --query-gpu=timestamp,index,utilization.gpu,memory.used --format=csv -l 15 > $W/logs/gpu-util.csv 2>&1 &
smi=$!
t0=$(date +%s)
scripts/demo/train_and_evaluate.sh 2>&1 | tee "$OUT/run.log"
rc=${PIPESTATUS[0]}
kill $smi 2>/dev/null
echo "train_and_evaluate rc=$rc wall=$(( $(date +%s) - t0 ))s" | tee -a "$OUT/run.log"
tar czf "$OUT/results.tar.gz" -C $W results logs
if [ "${PHASE:-all}" = stage1 ] && [ -f $W/results/best_a ]; then
  best=$(cat $W/results/best_a)
  pack $W/runs/"$best" a
  pack $W/runs/"$(python3 scripts/demo/choose_bundle.py plain "$best")" plain
elif [ "${PHASE:-all}" = grpo ]; then
  pack $W/runs/c-grpo c
elif [ -f $W/results/chosen.json ]; then
  ship=$(python3 -c "import json; print(json.load(open('$W/results/chosen.json'))['ship'])")
  plain=$(python3 -c "import json; print(json.load(open('$W/results/chosen.json'))['b'])")
  pack $W/runs/"$ship" ship
  pack $W/runs/"$plain" plain
fi
ls -la "$OUT"
exit $rc
