#!/usr/bin/env bash
# Train, export and evaluate the demo models (run from the repository root, on a machine with 1 or 2 CUDA GPUs and
# the worker's Python packages). Expects the data from `scripts/demo/reproduce.sh data` under demo-work/data.
#
# A sweep of stage-1 pairs, all at once (a tiny model uses a sliver of a GPU: several training processes share one):
#   (a) SFT with the latent loss and (b) the same data, steps and batch without <lvr>, for each learning rate in
#   LRS; (a) once per entry of LAMBDAS: the latent-loss weight, then options after colons, each named in the run:
#   `cosine` (or `mae`) for the latent loss, `frozen` to keep the vision tower fixed, `selffeed` for the CE on the
#   model's own latents (lvr_self_feed), `feed<N>` for that with N passes building them (lvr_feed_passes; N = the
#   latents per block feeds exactly decoding's), `detach` for a constant latent target (lvr_detach_target),
#   `centered` for the target minus the mean visual token (lvr_center_target); e.g.
#   `0.1:cosine:selffeed` is run a-lr001-l01-cosine-selffeed. PLAIN=0 leaves (b) out. Then (c) GRPO_latent from the (a) that scores best on the
#   validation split, and every model on the test split (reference decoding, scripts/demo/evaluate.py).
# Every seed is in the run specs (scripts/demo/specs/); the sweep's settings are `--set` overrides of those specs.
# Curriculum: STAGES="single:300 pair:400 full:1200" runs each stage-1 run as stages in that order (level:steps; `full`
# is the train split's records, any other level the records of `reproduce.sh data` with CURRICULUM), each stage
# starting from the previous stage's last checkpoint with a fresh schedule; default one stage, full:SFT_STEPS.
# Knobs (environment): STAGES, SFT_STEPS, BATCH, LRS, LAMBDAS, CHECKPOINT_EVERY (default: each stage's last step), SFT_DEADLINE (seconds after the start by which SFT is stopped
# with SIGTERM: the worker saves a checkpoint and exits 75), GRPO_SECONDS, EVAL_LIMIT (0 = whole split),
# VALIDATION_LIMIT, EVAL_WORKERS, PY; VALIDATION_SPLIT and TEST_SPLIT (default validation and test), GRPO_LEVEL (whose
# stage-2 records GRPO reads, default full), TEST_EVAL=0 to leave the test split to the evaluator service elsewhere.
# PHASE splits the work over two machine calls: `stage1` (init, stage 1, the choice of (a) on validation) and `grpo`
# ((c) from the model in GRPO_FROM, a copy of the chosen (a)'s last checkpoint named after it, with the stage-1
# validation scores in $W/results); default `all`.
set -euo pipefail
PY=${PY:-python3}
SFT_STEPS=${SFT_STEPS:-1800}
STAGES=${STAGES:-full:$SFT_STEPS}
BATCH=${BATCH:-128}
LRS=${LRS:-"0.002 0.004"}
LAMBDAS=${LAMBDAS:-"0.1 1.0"}
PLAIN=${PLAIN:-1}
SFT_DEADLINE=${SFT_DEADLINE:-350}
GRPO_SECONDS=${GRPO_SECONDS:-90}
EVAL_LIMIT=${EVAL_LIMIT:-0}
VALIDATION_LIMIT=${VALIDATION_LIMIT:-300}
EVAL_WORKERS=${EVAL_WORKERS:-$(nproc)}
W=${DEMO_WORK:-demo-work}
VALIDATION_SPLIT=${VALIDATION_SPLIT:-validation}
TEST_SPLIT=${TEST_SPLIT:-test}
GRPO_LEVEL=${GRPO_LEVEL:-full}
TEST_EVAL=${TEST_EVAL:-1}
PHASE=${PHASE:-all}
SPECS=scripts/demo/specs
export PYTHONPATH=$PWD/workers:$PWD/scripts/demo${PYTHONPATH:+:$PYTHONPATH}
export LVR_CACHE_DIR=${LVR_CACHE_DIR:-/tmp/lvr-demo-cache} PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
mkdir -p $W/logs $W/results $W/bundles
GPUS=$($PY -c 'import torch; print(torch.cuda.device_count())')
t_start=$(date +%s)
elapsed() { echo $(( $(date +%s) - t_start )); }
stamp() { echo "[demo $(elapsed)s] $*"; }

# Speed settings for a model this small (launch-bound on a GPU): no compile, no checkpointing; the whole batch in one
# packed row, every built sample kept in memory. fp32 on the GPU too (PRECISION): with bf16 autocast the 64-wide
# decoder never learned the option lookup that the same run in fp32 on a CPU learned (bench/results/demo/run5).
PRECISION=${PRECISION:-fp32}
FAST=(--set precision=$PRECISION --set mixed_precision=autocast --set compile_layers=false --set gradient_checkpointing=false
      --set train_vision=true --set cache_samples=true --set log_every=10
      --set max_instance_per_batch=$BATCH --set max_packed_tokens=$(( BATCH * 256 )))
records_of() { # level spec
  if [ "$1" = full ]; then echo $W/data/training/$2.jsonl; else echo $W/data/training-$1/$2.jsonl; fi
}
last_checkpoint() { ls -d $W/runs/$1/checkpoints/step-* 2>/dev/null | sed 's/.*step-//' | sort -n | tail -1; }
sft() { # name spec gpu lr lambda extra: the stages in order; the run's checkpoints are those of its last stage
  local name=$1 model=$W/init stage level steps run step left sets=() kv
  [ "$6" = - ] || for kv in ${6//,/ }; do sets+=(--set "$kv"); done
  for stage in $STAGES; do
    level=${stage%%:*} steps=${stage#*:}
    left=$(( SFT_DEADLINE - $(elapsed) ))
    [ $left -gt 5 ] || { stamp "$name: deadline before stage $level"; break; }
    run=$name; [ "$stage" = "${STAGES##* }" ] || run=$name.$level
    CUDA_VISIBLE_DEVICES=$3 timeout --preserve-status -s TERM $left \
      $PY -m lvr sft --spec $SPECS/$2.json --set run_id=$run --set learning_rate=$4 --set lvr_lambda=$5 \
      --set model_uri=$model --set data_uri=$(records_of $level $2) --set images_uri=$W/data/benchmark \
      --set max_steps=$steps --set checkpoint_every=${CHECKPOINT_EVERY:-$steps} \
      --set checkpoint_uri=$W/runs/$run/checkpoints --set bundle_uri=$W/bundles/$run "${FAST[@]}" "${sets[@]}" \
      > $W/logs/$run.events.jsonl 2> $W/logs/$run.stderr.log || true
    step=$(last_checkpoint $run)
    [ -n "$step" ] || { stamp "$run: no checkpoint"; break; }
    model=$W/runs/$run/checkpoints/step-$step/model
    [ "$run" = "$name" ] && break
  done
  # stopped before its last stage: the run is what the last stage it reached saved
  [ -e $W/runs/$name ] || [ -z "${run:-}" ] || [ ! -d $W/runs/$run ] || ln -s "$run" $W/runs/$name
}
ensure_bundle() { # name: the run's fp32 bundle (exported by the worker at the end; from the last checkpoint if stopped)
  [ -f $W/bundles/$1/manifest.json ] && return 0
  local step; step=$(last_checkpoint $1)
  [ -n "$step" ] || { echo "no checkpoint for $1"; return 1; }
  $PY -m lvr export $W/runs/$1/checkpoints/step-$step/model $W/bundles/$1 --precision fp32 --run-id $1 \
    > $W/logs/export-$1.log 2>&1
}

RUNS=() PIDS=() A_RUNS=() B_RUNS=()
VAL=(--benchmark $W/data/benchmark --split $VALIDATION_SPLIT --limit $VALIDATION_LIMIT --workers $EVAL_WORKERS)
TEST=(--benchmark $W/data/benchmark --split $TEST_SPLIT --limit $EVAL_LIMIT --workers $(( EVAL_WORKERS > 4 ? EVAL_WORKERS - 4 : 1 )))
if [ "$PHASE" != grpo ]; then
rm -rf $W/runs $W/init
stamp "initial model"
$PY scripts/demo/init_model.py $W/init --seed 0 > $W/logs/init.log 2>&1

# ---- stage 1: every run at once, spread over the GPUs --------------------------------------------------------------
i=0
for lr in $LRS; do
  tag=lr${lr#0.}
  [ "$PLAIN" = 1 ] && { B_RUNS+=(b-$tag); RUNS+=("b-$tag stage1-plain $lr 0 -"); }
  for variant in $LAMBDAS; do  # lambda[:option]...
    IFS=: read -r lam options <<< "$variant"
    name=a-$tag-l${lam/./} extra=
    for option in ${options//:/ }; do
      case $option in
        mse|mae|cosine) extra+=,lvr_fct=$option ;;
        frozen) extra+=,train_vision=false ;;
        selffeed) extra+=,lvr_self_feed=true ;;
        feed[0-9]*) extra+=,lvr_self_feed=true,lvr_feed_passes=${option#feed} ;;
        centered) extra+=,lvr_center_target=true ;;
        detach) extra+=,lvr_detach_target=true ;;
        *) echo "unknown LAMBDAS option $option in $variant" >&2; exit 2 ;;
      esac
      name+=-$option
    done
    extra=${extra#,}
    A_RUNS+=($name); RUNS+=("$name stage1-lvr $lr $lam ${extra:--}")
  done
done
stamp "stage 1: ${#RUNS[@]} runs on $GPUS GPU(s), stages $STAGES of $BATCH instances per step, deadline ${SFT_DEADLINE}s"
for r in "${RUNS[@]}"; do
  set -- $r
  sft $1 $2 $(( i % (GPUS > 0 ? GPUS : 1) )) $3 $4 $5 & PIDS+=($!)
  i=$(( i + 1 ))
done
for p in "${PIDS[@]}"; do wait $p || true; done
PIDS=()
for r in "${RUNS[@]}"; do
  set -- $r
  stamp "$1: last checkpoint step $(last_checkpoint $1) ($(grep -c '"Succeeded"' $W/logs/$1.events.jsonl || true) succeeded)"
  ensure_bundle $1 & PIDS+=($!)
done
for p in "${PIDS[@]}"; do wait $p || true; done

# ---- choose the (a) for stage 2 on the validation split -------------------------------------------------------------
stamp "validation of the (a) runs at 4 steps"
args=(); for a in "${A_RUNS[@]}"; do [ -f $W/bundles/$a/manifest.json ] && args+=(--bundle $a=$W/bundles/$a); done
CUDA_VISIBLE_DEVICES= $PY scripts/demo/evaluate.py "${VAL[@]}" --steps 4 "${args[@]}" --out $W/results/eval-validation-a.json
best_a=$($PY scripts/demo/choose_bundle.py best $W/results/eval-validation-a.json)
stamp "best (a) on validation: $best_a"

echo "$best_a" > $W/results/best_a
[ "$PHASE" = stage1 ] && { stamp "stage 1 done"; exit 0; }
grpo_from=$W/runs/$best_a/checkpoints/step-$(last_checkpoint $best_a)/model
else
  best_a=$(basename "$GRPO_FROM") grpo_from=$GRPO_FROM
  stamp "GRPO from $best_a ($grpo_from)"
fi

# ---- stage 2 from it, while the stage-1 models are scored on the test split -----------------------------------------
CUDA_VISIBLE_DEVICES=0 timeout --preserve-status -s TERM "$GRPO_SECONDS" $PY -m lvr grpo --spec $SPECS/stage2-grpo.json \
  --set precision=$PRECISION --set model_uri=$grpo_from --set checkpoint_uri=$W/runs/c-grpo/checkpoints \
  --set bundle_uri=$W/bundles/c-grpo --set run_id=c-grpo \
  --set data_uri=$(records_of $GRPO_LEVEL stage2) --set images_uri=$W/data/benchmark \
  > $W/logs/c-grpo.events.jsonl 2> $W/logs/c-grpo.stderr.log & pc=$!
args=()
for a in "${A_RUNS[@]}"; do [ -f $W/bundles/$a/manifest.json ] && args+=(--bundle $a=$W/bundles/$a); done
for b in "${B_RUNS[@]}"; do [ -f $W/bundles/$b/manifest.json ] && args+=(--bundle $b=$W/bundles/$b@0); done
if [ "$TEST_EVAL" = 1 ] && [ ${#args[@]} -gt 0 ]; then
  CUDA_VISIBLE_DEVICES= $PY scripts/demo/evaluate.py "${TEST[@]}" --steps 0,4,8,16 "${args[@]}" \
    --out $W/results/eval-test-ab.json --samples $W/results/samples-test-ab.jsonl
fi
rc=0; wait $pc || rc=$?
stamp "GRPO stopped at step $(last_checkpoint c-grpo) (exit $rc)"
ensure_bundle c-grpo || true

stamp "evaluation of (c); validation of (c) against the chosen (a)"
if [ -f $W/bundles/c-grpo/manifest.json ]; then
  [ "$TEST_EVAL" = 1 ] && CUDA_VISIBLE_DEVICES= $PY scripts/demo/evaluate.py "${TEST[@]}" --steps 0,4,8,16 \
    --bundle c-grpo=$W/bundles/c-grpo --out $W/results/eval-test-c.json --samples $W/results/samples-test-c.jsonl
  CUDA_VISIBLE_DEVICES= $PY scripts/demo/evaluate.py "${VAL[@]}" --steps 4 --bundle c-grpo=$W/bundles/c-grpo \
    --out $W/results/eval-validation-c.json
fi
$PY scripts/demo/choose_bundle.py ship $W "$best_a" | tee $W/results/chosen.txt
$PY scripts/demo/plot.py $(for r in "${RUNS[@]}"; do set -- $r; echo --events "$1=$W/logs/$1.events.jsonl"; done) \
  --events "c-grpo=$W/logs/c-grpo.events.jsonl" --out $W/results || true
stamp "done"
