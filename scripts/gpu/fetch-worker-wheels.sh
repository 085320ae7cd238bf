#!/usr/bin/env bash
# Here (with network): download the wheels of the worker's Python packages that the lent GPU machines lack into .whl/
# (git-ignored). Their image brings PyTorch, transformers, attrs and typing-extensions but not jsonschema, which checks
# run specs against libs/contracts. Versions: the ones workers/requirements.lock.txt pins; CPython 3.11-3.13 on
# x86_64 Linux (the machines run 3.12). Carry .whl with the call; scripts/gpu/worker-deps.sh installs them there.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dest="$root/.whl"
mkdir -p "$dest"
grep -E '^(jsonschema|jsonschema-specifications|referencing|rpds-py)==' "$root/workers/requirements.lock.txt" \
  > "$dest/requirements.txt"
pip=${PIP:-pip3}
for version in 3.11 3.12 3.13; do
  "$pip" download --quiet --disable-pip-version-check --no-deps --only-binary=:all: --python-version "$version" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$dest" -r "$dest/requirements.txt"
done
ls "$dest"
