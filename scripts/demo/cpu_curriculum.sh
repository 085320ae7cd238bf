#!/usr/bin/env bash
# One small CPU stage-1 run of the curriculum check (bench/results/demo/cpu-curriculum/): train the demo model from
# INIT on one level's training records, export the fp32 bundle, score it on the level's validation split.
#   scripts/demo/cpu_curriculum.sh NAME BENCHMARK RECORDS INIT   (env: STEPS BATCH LR LAMBDA SPEC EVAL_N THREADS SETS)
# SETS: more worker overrides, space-separated key=value (later ones win: SETS="train_vision=false lvr_fct=mse").
# RECORDS is the stage-1 jsonl (stage1-plain or stage1-lvr, text or letter answers); every run lands in
# demo-work/cc/runs/NAME and its events, evaluation and timings in bench/results/demo/cpu-curriculum/NAME.*.
set -euo pipefail
cd "$(dirname "$0")/../.."
NAME=$1 BENCH=$2 RECORDS=$3 INIT=$4
STEPS=${STEPS:-300} BATCH=${BATCH:-16} LR=${LR:-0.003} LAMBDA=${LAMBDA:-0.1} SPEC=${SPEC:-stage1-plain}
EVAL_N=${EVAL_N:-200} THREADS=${THREADS:-2}
PY=${PY:-python3}
export PYTHONPATH=$PWD/workers:$PWD/scripts/demo${PYTHONPATH:+:$PYTHONPATH}
export LVR_CACHE_DIR=${LVR_CACHE_DIR:-/tmp/lvr-demo-cache} PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export OMP_NUM_THREADS=$THREADS
RUN=demo-work/cc/runs/$NAME OUT=bench/results/demo/cpu-curriculum
mkdir -p $RUN $OUT
t0=$(date +%s)
nice $PY -m lvr sft --spec scripts/demo/specs/$SPEC.json --set run_id=$NAME --set learning_rate=$LR \
  --set lvr_lambda=$LAMBDA --set model_uri=$INIT --set data_uri=$RECORDS --set images_uri=$BENCH \
  --set max_steps=$STEPS --set checkpoint_every=$STEPS --set checkpoint_uri=$RUN/checkpoints \
  --set bundle_uri=$RUN/bundle --set max_instance_per_batch=$BATCH --set max_packed_tokens=$(( BATCH * 256 )) \
--set mixed_precision=autocast --set compile_layers=false \
  --set gradient_checkpointing=false --set train_vision=true --set cache_samples=true --set log_every=10 \
  $(for kv in ${SETS:-}; do printf -- '--set %s ' "$kv"; done) \
  > $OUT/$NAME.events.jsonl 2> $RUN/stderr.log
t1=$(date +%s)
steps=0; [ "$SPEC" = stage1-lvr ] && steps=4
CUDA_VISIBLE_DEVICES= nice $PY scripts/demo/evaluate.py --bundle $NAME=$RUN/bundle --benchmark $BENCH \
  --split ${EVAL_SPLIT:-validation} --steps $steps --limit $EVAL_N --workers 1 --out $OUT/$NAME.validation.json \
  --samples $OUT/$NAME.samples.jsonl \
  > $RUN/eval.log 2>&1
t2=$(date +%s)
echo "{\"name\":\"$NAME\",\"records\":\"$RECORDS\",\"steps\":$STEPS,\"batch\":$BATCH,\"lr\":$LR,\"lambda\":$LAMBDA,\"spec\":\"$SPEC\",\"train_seconds\":$((t1-t0)),\"eval_seconds\":$((t2-t1))}" > $OUT/$NAME.run.json
cat $OUT/$NAME.run.json
