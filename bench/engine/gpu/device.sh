#!/usr/bin/env bash
# GPU machine entry for the engine bench: unpack the carried Node runtime (scripts/gpu/setup-node.sh), build a
# Qwen2.5-VL-3B-shaped random checkpoint and its fp16 bundle, then run the bundled bench.js (WebGPU EP vs PyTorch CUDA).
set -euo pipefail
cd "$(dirname "$0")/../../.."
NODE=$(bash scripts/gpu/setup-node.sh)
mkdir -p /tmp/lvr-node/app && cp bench/engine/gpu/torch_cuda.py /tmp/lvr-node/app/
WORK=${WORK:-/tmp/lvr-gpu-bench}
mkdir -p "$WORK"
export PYTHONPATH=workers LVR_PYTHON=${LVR_PYTHON:-python3}
if [ ! -f "$WORK/bundle/_COMPLETE" ]; then
  "$LVR_PYTHON" - "$WORK" <<'PY'
import sys
from lvr.tiny import save_tiny_checkpoint
save_tiny_checkpoint(f"{sys.argv[1]}/ckpt", 0, hidden=2048, layers=36, heads=16, kv_heads=2, intermediate=11008,
                     vision_hidden=1280, vision_layers=32, vision_heads=16)
PY
  "$LVR_PYTHON" -m lvr export "$WORK/ckpt" "$WORK/bundle" --precision fp16 --no-verify
fi
[ "${PREPARE_ONLY:-0}" = 1 ] && exit 0
[ -x "$NODE" ] && [ -d /tmp/lvr-node/node_modules/onnxruntime-node ] || { echo "the Node runtime is not unpacked" >&2; exit 1; }
nvidia-smi --query-gpu=name --format=csv,noheader | head -1 > "$WORK/card.txt"
LVR_GPU_BENCH=1 "$NODE" /tmp/lvr-node/app/bench.js "$WORK" "${EP:-webgpu}"
