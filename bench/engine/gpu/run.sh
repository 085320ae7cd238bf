#!/usr/bin/env bash
# GPU part of the engine bench (run by the lead on the GPU machine; Node is carried in as $NODE).
#   NODE=/path/to/node LVR_PYTHON=/path/to/python bash bench/engine/gpu/run.sh
# Builds a Qwen2.5-VL-3B-shaped random checkpoint, exports it as an fp16 bundle, then times
# onnxruntime-node (WebGPU EP) vs PyTorch (CUDA, fp16): decode tokens/s and TTFT for an image prompt.
set -euo pipefail
cd "$(dirname "$0")/../../.."
NODE=${NODE:-node}
WORK=${WORK:-/tmp/lvr-gpu-bench}
mkdir -p "$WORK"
export PYTHONPATH=workers
"$LVR_PYTHON" - "$WORK" <<'PY'
import sys
from lvr.tiny import save_tiny_checkpoint
save_tiny_checkpoint(f"{sys.argv[1]}/ckpt", 0, hidden=2048, layers=36, heads=16, kv_heads=2, intermediate=11008,
                     vision_hidden=1280, vision_layers=32, vision_heads=16)
PY
"$LVR_PYTHON" -m lvr export "$WORK/ckpt" "$WORK/bundle" --precision fp16 --no-verify
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$WORK/card.txt"
LVR_GPU_BENCH=1 "$NODE" -r @swc-node/register bench/engine/gpu/bench.ts "$WORK" webgpu
