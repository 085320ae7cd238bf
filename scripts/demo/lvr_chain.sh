#!/usr/bin/env bash
# The demo models as one chain, on CUDA GPUs when visible or else the CPU (run from the repository root after
# `CURRICULUM=single scripts/demo/reproduce.sh data`); every seed is in the run specs (scripts/demo/specs/):
#   b   plain stage-1 SFT from init_model.py --seed 0 on the single level's records without `<lvr>`
#       (B_STEPS 3000, lr B_LR 0.001, batch 16)
#   ab  from (b), two runs of A_STEPS (1200) at lr A_LR (0.0003), at once (on two GPUs when there are two):
#       (a)  the `<lvr>` records with the latent loss: the CE on the latents decoding feeds (lvr_self_feed,
#            lvr_feed_passes=4: a single-level block holds 4 latents), cosine to the region tokens centred on the mean
#            visual token, target detached, λ 0.1;
#       (b2) the plain records: (a)'s control with the same data, steps and schedule
#   c   GRPO_latent from (a) (specs/stage2-grpo.json, C_STEPS 120): letter accuracy plus 0.5 × a closed latent block
#       (demo_rewards.latent_block), or letter accuracy alone with C_REWARDS=letter
# Each run is scored on validation-single (EVAL_N questions, scripts/demo/evaluate.py; (a) and (c) at 4 latent steps);
# then each model exported in fp16 under $W/chain/bundles/NAME, (a) and (c) with 4 latent steps as their default.
#   scripts/demo/lvr_chain.sh [PHASE...]   (default: b ab c)
#   env: B_STEPS B_LR A_STEPS A_LR C_STEPS C_REWARDS C_SECONDS (GRPO's deadline, SIGTERM) B_DEADLINE A_DEADLINE
#        (seconds per SFT phase) B_MODEL (where `ab` starts, default the chain's b) A_MODEL (where `c` starts)
#        THREADS (CPU threads per run) PY DEMO_WORK RESULTS (events and validation, default bench/results/demo/chain)
#        EXPORT=0 (no fp16 bundles: scripts/demo/device_call.sh packs the models instead)
set -euo pipefail
cd "$(dirname "$0")/../.."
PHASES=${*:-b ab c}
B_STEPS=${B_STEPS:-3000} B_LR=${B_LR:-0.001} A_STEPS=${A_STEPS:-1200} A_LR=${A_LR:-0.0003}
C_STEPS=${C_STEPS:-120} C_REWARDS=${C_REWARDS:-block} THREADS=${THREADS:-2}
W=${DEMO_WORK:-demo-work} PY=${PY:-python3}
export RUNS=$W/chain/runs RESULTS=${RESULTS:-bench/results/demo/chain} PY THREADS
export LVR_QWEN_TOKENIZER_DIR=${LVR_QWEN_TOKENIZER_DIR:-$PWD/$W/data/qwen-tokenizer}
export PYTHONPATH=$PWD/workers:$PWD/scripts/demo${PYTHONPATH:+:$PYTHONPATH}
export LVR_CACHE_DIR=${LVR_CACHE_DIR:-/tmp/lvr-demo-cache} PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export OMP_NUM_THREADS=$THREADS EVAL_SPLIT=validation-single EVAL_N=${EVAL_N:-300}
BENCH=$W/data/benchmark DATA=$W/data/training-single
GPUS=$($PY -c 'import torch; print(torch.cuda.device_count())')
mkdir -p $RUNS $RESULTS $W/chain/bundles
stamp() { echo "[chain $(date -u +%H:%M:%S)] $*"; }
model_of() { echo $RUNS/$1/checkpoints/last/model; }
gpu() { [ "$GPUS" -gt 0 ] && echo $(( $1 % GPUS )) || echo ""; }

for phase in $PHASES; do
  case $phase in
  b)
    stamp "b: init, then $B_STEPS plain steps on ${GPUS} GPU(s)"
    $PY scripts/demo/init_model.py $W/chain/init --seed 0 > $RESULTS/init.log 2>&1
    CUDA_VISIBLE_DEVICES=$(gpu 0) STEPS=$B_STEPS LR=$B_LR SPEC=stage1-plain DEADLINE=${B_DEADLINE:-} \
      CHECKPOINT_EVERY=500 scripts/demo/sft_stage.sh b $BENCH $DATA/stage1-plain.jsonl $W/chain/init
    ;;
  ab)
    from=${B_MODEL:-$(model_of b)}
    stamp "ab: (a) and (b2) from $from, $A_STEPS steps each"
    CUDA_VISIBLE_DEVICES=$(gpu 0) STEPS=$A_STEPS LR=$A_LR LAMBDA=0.1 SPEC=stage1-lvr DEADLINE=${A_DEADLINE:-} \
      CHECKPOINT_EVERY=400 \
      SETS="lvr_fct=cosine lvr_self_feed=true lvr_feed_passes=4 lvr_center_target=true lvr_detach_target=true" \
      scripts/demo/sft_stage.sh a $BENCH $DATA/stage1-lvr.jsonl "$from" & pa=$!
    CUDA_VISIBLE_DEVICES=$(gpu 1) STEPS=$A_STEPS LR=$A_LR SPEC=stage1-plain DEADLINE=${A_DEADLINE:-} \
      CHECKPOINT_EVERY=400 scripts/demo/sft_stage.sh b2 $BENCH $DATA/stage1-plain.jsonl "$from" & pb=$!
    rc=0; wait $pa || rc=$?; wait $pb || rc=$?
    [ $rc = 0 ] || { stamp "ab failed ($rc)"; exit $rc; }
    ;;
  c)
    from=${A_MODEL:-$(model_of a)}
    rewards='["demo_rewards:letter_accuracy","demo_rewards:latent_block"]' weights='[1.0,0.5]'
    [ "$C_REWARDS" = letter ] && rewards='["demo_rewards:letter_accuracy"]' weights='[1.0]'
    stamp "c: GRPO_latent from $from, $C_STEPS steps, rewards $rewards"
    mkdir -p $RUNS/c
    rc=0
    CUDA_VISIBLE_DEVICES=$(gpu 0) ${C_SECONDS:+timeout --preserve-status -s TERM $C_SECONDS} \
      $PY -m lvr grpo --spec scripts/demo/specs/stage2-grpo.json --set run_id=c --set precision=fp32 \
      --set model_uri="$from" --set checkpoint_uri=$RUNS/c/checkpoints --set bundle_uri=$RUNS/c/bundle \
      --set data_uri=$DATA/stage2.jsonl --set images_uri=$BENCH --set max_steps=$C_STEPS --set checkpoint_every=20 \
      --set "reward_funcs=$rewards" --set "reward_weights=$weights" \
      > $RESULTS/c.events.jsonl 2> $RUNS/c/stderr.log || rc=$?
    last=$(ls -d $RUNS/c/checkpoints/step-* 2>/dev/null | sed 's/.*step-//' | sort -n | tail -1)
    [ -n "$last" ] || { stamp "c: no checkpoint (exit $rc)"; exit 1; }
    ln -sfn step-$last $RUNS/c/checkpoints/last
    stamp "c: stopped at step $last (exit $rc)"
    [ -f $RUNS/c/bundle/manifest.json ] || $PY -m lvr export $RUNS/c/checkpoints/last/model $RUNS/c/bundle \
      --precision fp32 --run-id c > $RUNS/c/export.log 2>&1
    CUDA_VISIBLE_DEVICES= nice $PY scripts/demo/evaluate.py --bundle c=$RUNS/c/bundle --benchmark $BENCH \
      --split $EVAL_SPLIT --steps 4 --limit $EVAL_N --workers 1 --out $RESULTS/c.validation.json \
      --samples $RESULTS/c.samples.jsonl > $RUNS/c/eval.log 2>&1
    ;;
  *) echo "unknown phase $phase (b, ab, c)" >&2; exit 2 ;;
  esac
done

[ "${EXPORT:-1}" = 1 ] && for name in b a b2 c; do
  [ -d $RUNS/$name/checkpoints/last/model ] || continue
  lvr_steps=(); [ $name = a ] || [ $name = c ] && lvr_steps=(--lvr-steps 4)
  rm -rf $W/chain/bundles/$name-fp16
  $PY -m lvr export $RUNS/$name/checkpoints/last/model $W/chain/bundles/$name-fp16 --precision fp16 "${lvr_steps[@]}" \
    --run-id $name > $RUNS/$name/export-fp16.log 2>&1
done
stamp "done"
