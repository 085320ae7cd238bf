# Sourced by the GPU calls (fused_call.sh, ort_options_call.sh): onnxruntime-gpu's CUDA provider next to
# onnxruntime-node, Node, and the addon's library paths (LVR_ORT_ADDON, LVR_ORT_LIBRARY, LVR_CUDART_LIBRARY).
# Sets `site` (onnxruntime-gpu's Python package folder), NODE and ORTDIR; run from the repository root.
# ORT_GPU_SITE: a folder with onnxruntime-gpu's `onnxruntime` package (a GPU host with it installed, and NODE plus
# this repository's node_modules); otherwise the .ortpartN parts and .nodebin/ carried to a lent machine.
if [ -n "${ORT_GPU_SITE:-}" ]; then
  eval "$(bash bench/engine/gpu/ort_cuda_parts.sh env "$ORT_GPU_SITE")"
  site=$ORT_GPU_SITE
  ORTDIR=$(dirname "$("${NODE:-node}" -p "require.resolve('onnxruntime-node/package.json')")")/bin/napi-v6/linux/x64
else
  mkdir -p /tmp/ortc && cp .ortpart4/* /tmp/ortc/
  # A lent machine that was given back in between is a fresh one: the earlier calls' parts are gone.
  unpacked=$(bash bench/engine/gpu/ort_cuda_parts.sh unpack) || {
    echo "ort_env.sh: the .ortpartN parts are not all in /tmp/ortc on this machine: carry them again" >&2
    exit 1
  }
  eval "$unpacked"
  site=/tmp/ort-site
  NODE=$(bash scripts/gpu/setup-node.sh)
  ORTDIR=/tmp/lvr-node/node_modules/onnxruntime-node/bin/napi-v6/linux/x64
fi
cp $site/onnxruntime/capi/libonnxruntime_providers_{shared,cuda}.so $ORTDIR/
CUDART=$(python3 -c "import glob,site;print(sorted(glob.glob(site.getsitepackages()[0]+'/nvidia/**/libcudart.so.13*',recursive=True))[0])")
# NVRTC for the addon's lvr ops (fusedProjections): PyTorch's wheel ships it.
NVRTC=$(python3 -c "import glob,site;print((sorted(glob.glob(site.getsitepackages()[0]+'/nvidia/**/libnvrtc.so.1[23]*',recursive=True)) or [''])[0])")
[ -n "$NVRTC" ] && export LVR_NVRTC_LIBRARY=$NVRTC
export LVR_ORT_ADDON=${LVR_ORT_ADDON:-$root/.nodebin/ort_fused.node} LVR_ORT_LIBRARY=$ORTDIR/libonnxruntime.so.1 LVR_CUDART_LIBRARY=$CUDART
