# Sourced on the GPU machine before the worker runs (`. scripts/gpu/worker-deps.sh || exit`): when its python3 lacks
# jsonschema, install the wheels carried in .whl/ (scripts/gpu/fetch-worker-wheels.sh) without network into
# /tmp/lvr-pydeps and put that folder on PYTHONPATH. Returns non-zero when neither the package nor its wheels are
# there: the worker refuses run specs it cannot check.
lvr_worker_deps() {
  local root py
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  py=${PY:-python3}
  "$py" -c 'import jsonschema' 2>/dev/null && return 0
  if [ -f "$root/.whl/requirements.txt" ] &&
    "$py" -m pip install --quiet --disable-pip-version-check --no-index --no-deps --no-compile --no-cache-dir \
      --find-links "$root/.whl" --target /tmp/lvr-pydeps -r "$root/.whl/requirements.txt"; then
    export PYTHONPATH=/tmp/lvr-pydeps${PYTHONPATH:+:$PYTHONPATH}
  fi
  "$py" -c 'import jsonschema' && return 0
  echo "worker-deps: jsonschema missing; run scripts/gpu/fetch-worker-wheels.sh here and carry .whl" >&2
  return 1
}
lvr_worker_deps
