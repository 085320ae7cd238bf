#!/usr/bin/env bash
# The LVR demo models on CPU, from a plain stage-1 model (b) (run from the repository root, after
# `scripts/demo/reproduce.sh data` with CURRICULUM=single,pair):
#   (a) stage-1 SFT with `<lvr>` records and the latent loss, continued from (b): the CE on the latents decoding feeds
#       (lvr_self_feed, lvr_feed_passes=4: the single level's blocks hold 4 latents), cosine to the region tokens
#       centred on the mean visual token, target detached, λ 0.1 (scripts/demo/cpu_curriculum.sh);
#   (c) GRPO_latent from (a) (specs/stage2-grpo.json): letter accuracy plus 0.5 × a closed latent block
#       (demo_rewards.latent_block), or letter accuracy alone with C_REWARDS=letter;
# then both exported in fp16 with 4 latent steps as their default decoding, under demo-work/bundles/NAME-fp16.
#   scripts/demo/cpu_lvr_chain.sh B_MODEL   (env: A_STEPS=1200 A_LR=0.0003 C_STEPS=120 C_REWARDS=block THREADS=2 PY)
# Events, validation scores and samples land in bench/results/demo/cpu-curriculum/; score the bundles on the held-out
# split with scripts/demo/score-with-evaluator.ts (README, "Demo model").
set -euo pipefail
cd "$(dirname "$0")/../.."
B_MODEL=$1
A_STEPS=${A_STEPS:-1200} A_LR=${A_LR:-0.0003} C_STEPS=${C_STEPS:-120} C_REWARDS=${C_REWARDS:-block} THREADS=${THREADS:-2}
PY=${PY:-python3}
A=a-lvr C=c-grpo-$C_REWARDS RUNS=demo-work/cc/runs OUT=bench/results/demo/cpu-curriculum
export LVR_QWEN_TOKENIZER_DIR=${LVR_QWEN_TOKENIZER_DIR:-$PWD/demo-work/data/qwen-tokenizer}
export PYTHONPATH=$PWD/workers:$PWD/scripts/demo${PYTHONPATH:+:$PYTHONPATH}
export LVR_CACHE_DIR=${LVR_CACHE_DIR:-/tmp/lvr-demo-cache} PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export OMP_NUM_THREADS=$THREADS

STEPS=$A_STEPS LR=$A_LR LAMBDA=0.1 SPEC=stage1-lvr THREADS=$THREADS EVAL_SPLIT=validation-single EVAL_N=300 \
  SETS="lvr_fct=cosine lvr_self_feed=true lvr_feed_passes=4 lvr_center_target=true lvr_detach_target=true" \
  PY=$PY scripts/demo/cpu_curriculum.sh $A demo-work/data/benchmark demo-work/data/training-single/stage1-lvr.jsonl \
  "$B_MODEL"

rewards='["demo_rewards:letter_accuracy","demo_rewards:latent_block"]' weights='[1.0,0.5]'
[ "$C_REWARDS" = letter ] && rewards='["demo_rewards:letter_accuracy"]' weights='[1.0]'
mkdir -p $RUNS/$C
$PY -m lvr grpo --spec scripts/demo/specs/stage2-grpo.json --set run_id=$C \
  --set model_uri=$RUNS/$A/checkpoints/step-$A_STEPS/model --set checkpoint_uri=$RUNS/$C/checkpoints \
  --set bundle_uri=$RUNS/$C/bundle --set data_uri=demo-work/data/training-single/stage2.jsonl \
  --set images_uri=demo-work/data/benchmark --set max_steps=$C_STEPS --set checkpoint_every=40 \
  --set "reward_funcs=$rewards" --set "reward_weights=$weights" > $OUT/$C.events.jsonl 2> $RUNS/$C/stderr.log

for run in $A:$A_STEPS $C:$C_STEPS; do
  name=${run%%:*}
  $PY -m lvr export $RUNS/$name/checkpoints/step-${run#*:}/model demo-work/bundles/$name-fp16 --precision fp16 \
    --lvr-steps 4 --run-id $name
done
