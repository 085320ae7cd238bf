#!/usr/bin/env bash
# On the GPU machine: unpack what scripts/gpu/pack-node-bench.mjs packed (Node, onnxruntime-node, sharp, the bundled
# bench) under /tmp/lvr-node, and the Vulkan/EGL loaders the WebGPU execution provider needs. Prints the node path.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dest=/tmp/lvr-node
if [ ! -x "$dest/bin/node" ]; then
  mkdir -p "$dest/bin" "$dest/node_modules"
  xz -dc "$root/.nodebin/node.xz" > "$dest/bin/node"
  chmod +x "$dest/bin/node"
  tar xJf "$root/.nodebin/native.tar.xz" -C "$dest/node_modules"
fi
rm -rf "$dest/app" && cp -r "$root/.nodebin/app" "$dest/app"
if [ -d "$root/.gl" ] && ! ldconfig -p | grep -q libvulkan.so.1; then
  for f in "$root"/.gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
echo "$dest/bin/node"
