#!/usr/bin/env bash
# Train, export and evaluate the demo models (run from the repository root, on a machine with 1 or 2 CUDA GPUs and
# the worker's Python packages). Expects the data from `scripts/demo/reproduce.sh data` under demo-work/data.
#   (a) stage-1 SFT with the latent loss   (b) the same without <lvr>   (c) stage-2 GRPO_latent from (a)
# (a) and (b) train at once when two GPUs are visible. Every seed is in the run specs (scripts/demo/specs/).
# Knobs (environment): SFT_STEPS, GRPO_SECONDS (stage 2 is time-bounded: SIGTERM makes the worker save a checkpoint
# and stop, exit 75; its step count is in the log), EVAL_LIMIT (0 = whole split), EVAL_WORKERS, PY.
set -euo pipefail
PY=${PY:-python3}
SFT_STEPS=${SFT_STEPS:-700}
GRPO_SECONDS=${GRPO_SECONDS:-60}
EVAL_LIMIT=${EVAL_LIMIT:-400}
EVAL_WORKERS=${EVAL_WORKERS:-$(nproc)}
W=demo-work
SPECS=scripts/demo/specs
export PYTHONPATH=$PWD/workers:$PWD/scripts/demo${PYTHONPATH:+:$PYTHONPATH}
export LVR_CACHE_DIR=${LVR_CACHE_DIR:-/tmp/lvr-demo-cache} PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
mkdir -p $W/logs $W/results
GPUS=$($PY -c 'import torch; print(torch.cuda.device_count())')
GPU_B=$(( GPUS > 1 ? 1 : 0 ))
t_start=$(date +%s)
stamp() { echo "[demo $(( $(date +%s) - t_start ))s] $*"; }

# Speed settings for a model this small (launch-bound on a GPU): plain autocast, no compile, no checkpointing.
FAST=(--set mixed_precision=autocast --set compile_layers=false --set gradient_checkpointing=false)
sft() { # name gpu
  CUDA_VISIBLE_DEVICES=$2 $PY -m lvr sft --spec $SPECS/$1.json --set max_steps=$SFT_STEPS \
    --set checkpoint_every=$SFT_STEPS --set train_vision=true --set cache_samples=true --set log_every=5 "${FAST[@]}" \
    > $W/logs/$1.events.jsonl 2> $W/logs/$1.stderr.log
}
export_fp16() { # checkpoint-model-dir bundle-dir run-id
  $PY -m lvr export "$1" "$2" --precision fp16 --run-id "$3" > $W/logs/export-$3.log 2>&1
}

rm -rf $W/runs $W/init
stamp "initial model"
$PY scripts/demo/init_model.py $W/init --seed 0 > $W/logs/init.log 2>&1

stamp "stage 1: (a) with LVR on GPU 0, (b) plain on GPU $GPU_B ($SFT_STEPS steps each)"
if [ "$GPUS" -gt 1 ]; then
  sft stage1-lvr 0 & pa=$!; sft stage1-plain 1 & pb=$!
  wait $pa; wait $pb
else
  sft stage1-lvr 0; sft stage1-plain 0
fi
for run in stage1-lvr stage1-plain; do
  cp -r $W/runs/$run/checkpoints/step-$SFT_STEPS/model $W/runs/$run/final
done

stamp "stage 2: (c) GRPO_latent from (a) on GPU 0 (${GRPO_SECONDS}s); exports and (a)/(b) evaluation meanwhile"
CUDA_VISIBLE_DEVICES=0 timeout --preserve-status -s TERM "$GRPO_SECONDS" $PY -m lvr grpo --spec $SPECS/stage2-grpo.json \
  > $W/logs/stage2-grpo.events.jsonl 2> $W/logs/stage2-grpo.stderr.log & pc=$!
export_fp16 $W/runs/stage1-lvr/final $W/bundles/stage1-lvr stage1-lvr
export_fp16 $W/runs/stage1-plain/final $W/bundles/stage1-plain stage1-plain
EVAL=(--benchmark $W/data/benchmark --split test --limit $EVAL_LIMIT --workers $EVAL_WORKERS)
CUDA_VISIBLE_DEVICES= $PY scripts/demo/evaluate.py "${EVAL[@]}" --steps 0,4,8,16 \
  --bundle a-sft-lvr=$W/bundles/stage1-lvr --bundle b-sft-plain=$W/bundles/stage1-plain@0 \
  --out $W/results/eval-ab.json --samples $W/results/samples-ab.jsonl
rc=0; wait $pc || rc=$?
[ $rc -eq 0 ] || [ $rc -eq 75 ] || { echo "GRPO failed (exit $rc)"; exit $rc; }
last=$(ls -d $W/runs/stage2-grpo/checkpoints/step-* | sed 's/.*step-//' | sort -n | tail -1)
stamp "GRPO stopped at step $last (exit $rc)"
cp -r $W/runs/stage2-grpo/checkpoints/step-$last/model $W/runs/stage2-grpo/final
export_fp16 $W/runs/stage2-grpo/final $W/bundles/stage2-grpo stage2-grpo

stamp "evaluation of (c); validation split for choosing the shipped model"
CUDA_VISIBLE_DEVICES= $PY scripts/demo/evaluate.py "${EVAL[@]}" --steps 0,4,8,16 \
  --bundle c-grpo-latent=$W/bundles/stage2-grpo --out $W/results/eval-c.json --samples $W/results/samples-c.jsonl
CUDA_VISIBLE_DEVICES= $PY scripts/demo/evaluate.py --benchmark $W/data/benchmark --split validation \
  --limit ${VALIDATION_LIMIT:-150} --workers $EVAL_WORKERS --steps 4,8,16 \
  --bundle a-sft-lvr=$W/bundles/stage1-lvr --bundle c-grpo-latent=$W/bundles/stage2-grpo \
  --out $W/results/eval-validation.json
$PY scripts/demo/plot.py --events "a-sft-lvr=$W/logs/stage1-lvr.events.jsonl" \
  --events "b-sft-plain=$W/logs/stage1-plain.events.jsonl" \
  --events "c-grpo-latent=$W/logs/stage2-grpo.events.jsonl" --out $W/results
stamp "done"
