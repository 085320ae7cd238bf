#!/usr/bin/env bash
# On the GPU machine: unpack what scripts/gpu/pack-node-bench.mjs packed (Node, onnxruntime-node, sharp when packed,
# the Qwen tokenizer files, the bundled bench) under /tmp/lvr-node, and the Vulkan/EGL loaders the WebGPU execution
# provider needs. Prints the node path.
# The archives may arrive in separate calls (one call carries at most 64 MiB): each is unpacked when present, and
# what an earlier call unpacked on the same warm machine is kept.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dest=/tmp/lvr-node
mkdir -p "$dest/bin" "$dest/node_modules"
if [ -f "$root/.nodebin/node.xz" ] && [ ! -x "$dest/bin/node" ]; then
  xz -T0 -dc "$root/.nodebin/node.xz" > "$dest/bin/node.partial" && chmod +x "$dest/bin/node.partial"
  mv "$dest/bin/node.partial" "$dest/bin/node"
fi
if [ -f "$root/.nodebin/native.tar.xz" ] && [ ! -d "$dest/node_modules/onnxruntime-node" ]; then
  tar xJf "$root/.nodebin/native.tar.xz" -C "$dest/node_modules"
fi
if [ -f "$root/.nodebin/tokenizer.tar.xz" ] && [ ! -d "$dest/tokenizer" ]; then
  mkdir -p "$dest/tokenizer" && tar xJf "$root/.nodebin/tokenizer.tar.xz" -C "$dest/tokenizer"
fi
if [ -d "$root/.nodebin/app" ]; then rm -rf "$dest/app" && cp -r "$root/.nodebin/app" "$dest/app"; fi
if [ -d "$root/.gl" ] && ! ldconfig -p | grep -q libvulkan.so.1; then
  for f in "$root"/.gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
echo "$dest/bin/node"
