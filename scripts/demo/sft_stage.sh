#!/usr/bin/env bash
# One stage-1 SFT run of the demo model, on a CUDA GPU when one is visible or else the CPU: train from INIT on one
# level's training records, export the fp32 bundle (from the last checkpoint when DEADLINE stopped it), score it on the
# level's validation split (scripts/demo/evaluate.py, on the CPU).
#   scripts/demo/sft_stage.sh NAME BENCHMARK RECORDS INIT
#   env: STEPS BATCH LR LAMBDA SPEC EVAL_SPLIT EVAL_N THREADS SETS PRECISION (fp32) DEADLINE (seconds; SIGTERM makes the
#        worker save a checkpoint and exit) CHECKPOINT_EVERY (default STEPS) RUNS RESULTS PY
# SETS: more worker overrides, space-separated key=value (later ones win: SETS="train_vision=false lvr_fct=mse").
# RECORDS is the stage-1 jsonl (stage1-plain or stage1-lvr, text or letter answers); the run lands in RUNS/NAME
# (default demo-work/cc/runs) and its events, validation scores, samples and timings in RESULTS/NAME.* (default
# bench/results/demo/cpu-curriculum).
set -euo pipefail
cd "$(dirname "$0")/../.."
NAME=$1 BENCH=$2 RECORDS=$3 INIT=$4
STEPS=${STEPS:-300} BATCH=${BATCH:-16} LR=${LR:-0.003} LAMBDA=${LAMBDA:-0.1} SPEC=${SPEC:-stage1-plain}
EVAL_N=${EVAL_N:-200} THREADS=${THREADS:-2} PRECISION=${PRECISION:-fp32} CHECKPOINT_EVERY=${CHECKPOINT_EVERY:-$STEPS}
PY=${PY:-python3}
export PYTHONPATH=$PWD/workers:$PWD/scripts/demo${PYTHONPATH:+:$PYTHONPATH}
export LVR_CACHE_DIR=${LVR_CACHE_DIR:-/tmp/lvr-demo-cache} PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export OMP_NUM_THREADS=$THREADS
RUN=${RUNS:-demo-work/cc/runs}/$NAME OUT=${RESULTS:-bench/results/demo/cpu-curriculum}
mkdir -p $RUN $OUT
t0=$(date +%s)
rc=0
${DEADLINE:+timeout --preserve-status -s TERM $DEADLINE} nice $PY -m lvr sft --spec scripts/demo/specs/$SPEC.json \
  --set run_id=$NAME --set learning_rate=$LR \
  --set lvr_lambda=$LAMBDA --set model_uri=$INIT --set data_uri=$RECORDS --set images_uri=$BENCH \
  --set max_steps=$STEPS --set checkpoint_every=$CHECKPOINT_EVERY --set checkpoint_uri=$RUN/checkpoints \
  --set bundle_uri=$RUN/bundle --set max_instance_per_batch=$BATCH --set max_packed_tokens=$(( BATCH * 256 )) \
  --set precision=$PRECISION --set mixed_precision=autocast --set compile_layers=false \
  --set gradient_checkpointing=false --set train_vision=true --set cache_samples=true --set log_every=10 \
  $(for kv in ${SETS:-}; do printf -- '--set %s ' "$kv"; done) \
  > $OUT/$NAME.events.jsonl 2> $RUN/stderr.log || rc=$?
t1=$(date +%s)
last=$(ls -d $RUN/checkpoints/step-* 2>/dev/null | sed 's/.*step-//' | sort -n | tail -1)
[ -n "$last" ] || { echo "$NAME: no checkpoint (worker exit $rc, $RUN/stderr.log)" >&2; exit 1; }
ln -sfn step-$last $RUN/checkpoints/last
[ -f $RUN/bundle/manifest.json ] || $PY -m lvr export $RUN/checkpoints/step-$last/model $RUN/bundle --precision fp32 \
  --run-id $NAME > $RUN/export.log 2>&1
steps=0; [ "$SPEC" = stage1-lvr ] && steps=4
CUDA_VISIBLE_DEVICES= nice $PY scripts/demo/evaluate.py --bundle $NAME=$RUN/bundle --benchmark $BENCH \
  --split ${EVAL_SPLIT:-validation} --steps $steps --limit $EVAL_N --workers 1 --out $OUT/$NAME.validation.json \
  --samples $OUT/$NAME.samples.jsonl \
  > $RUN/eval.log 2>&1
t2=$(date +%s)
echo "{\"name\":\"$NAME\",\"records\":\"$RECORDS\",\"steps\":$last,\"max_steps\":$STEPS,\"batch\":$BATCH,\"lr\":$LR,\"lambda\":$LAMBDA,\"spec\":\"$SPEC\",\"device\":\"$($PY -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")')\",\"train_seconds\":$((t1-t0)),\"eval_seconds\":$((t2-t1))}" > $OUT/$NAME.run.json
cat $OUT/$NAME.run.json
