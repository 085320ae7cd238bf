#!/usr/bin/env bash
# What one call on the lent GPU machine runs (it has PyTorch but no Node): unpack the data made here by
# `reproduce.sh data` (carried as demo-work/data.tar.gz), train/export/evaluate, then put the results and the chosen
# bundle (split into parts below the 16 MiB return limit) under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../.."
mkdir -p demo-work "$OUT"
. scripts/gpu/worker-deps.sh || exit 1  # jsonschema from the carried .whl/ (scripts/gpu/fetch-worker-wheels.sh)
tar xzf demo-work/data.tar.gz -C demo-work
export LVR_QWEN_TOKENIZER_DIR=$PWD/demo-work/data/qwen-tokenizer
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
t0=$(date +%s)
scripts/demo/train_and_evaluate.sh 2>&1 | tee "$OUT/run.log"
rc=${PIPESTATUS[0]}
echo "train_and_evaluate rc=$rc wall=$(( $(date +%s) - t0 ))s" | tee -a "$OUT/run.log"
python3 scripts/demo/choose_bundle.py demo-work 2>&1 | tee -a "$OUT/run.log"
tar czf "$OUT/results.tar.gz" -C demo-work results logs
if [ -f demo-work/chosen.txt ]; then
  chosen=$(cat demo-work/chosen.txt)
  tar cf - -C "demo-work/bundles/$chosen" --exclude=tokenizer.json . | split -b 15m - "$OUT/bundle.tar.part-"
fi
ls -la "$OUT"
exit $rc
