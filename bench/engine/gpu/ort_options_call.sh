#!/usr/bin/env bash
# ONNX Runtime kernel options against the defaults, in the same call, on the bundles a fused_call.sh run left in
# /tmp/w (run it first in the same command): per variant the kernel profile of the fused step (kernel_profile.py,
# every bundle, batches 1 and 32) and, for variants named in ENGINE (default: all but `base`), the engine bench
# (bench.ts; configurations LVR_BENCH_ONLY, default fp16_device_kv,int4_device_kv); PROFILE=0 leaves the kernel
# profiles out. A variant is NAME or
# NAME=VAR=VALUE[,VAR=VALUE...]: environment variables ONNX Runtime reads when it builds its kernels, e.g.
#   OUT=DIR bash bench/engine/gpu/ort_options_call.sh base fpa=ORT_FPA_INTB_GEMM=1 xqa=ORT_ENABLE_XQA=1
# Results: $OUT/kp_NAME.json, $OUT/ts_NAME.json; a SUMMARY line per run.
set -u
root=$(cd "$(dirname "$0")/../../.." && pwd); cd "$root"
: "${OUT:?OUT (the results folder) is required}"; mkdir -p "$OUT"
source bench/engine/gpu/ort_env.sh
W=/tmp/w
for variant in "$@"; do
  name=${variant%%=*}; vars=""; [ "$name" != "$variant" ] && vars=${variant#*=}
  envs=(); IFS=',' read -r -a envs <<< "$vars"
  echo "VARIANT $name ${envs[*]:-} $(date +%T)"
  [ "${PROFILE:-1}" = 0 ] || env "${envs[@]}" timeout 120 python3 bench/engine/gpu/kernel_profile.py $W/bundle-fp16 \
    $W/bundle-int4 --out $OUT/kp_$name.json > $OUT/kp_$name.log 2>&1 || tail -5 $OUT/kp_$name.log
  if [[ ",${ENGINE:-}," == *",$name,"* ]] || { [ -z "${ENGINE:-}" ] && [ "$name" != base ]; }; then
    env "${envs[@]}" LVR_BENCH_EP=cuda LVR_BENCH_ONLY=${LVR_BENCH_ONLY:-fp16_device_kv,int4_device_kv} timeout 200 \
      $NODE ${APP:-/tmp/lvr-node/app/bench.js} $W $OUT/ts_$name.json $(( $(date +%s)+170 )) > $OUT/ts_$name.log 2>&1
    echo "engine rc $?"
  fi
done
python3 - "$OUT" "$@" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
for variant in sys.argv[2:]:
    name = variant.split("=", 1)[0]
    kp = out / f"kp_{name}.json"
    if kp.exists():
        for bundle, entry in json.loads(kp.read_text())["bundles"].items():
            for run in entry["runs"]:
                top = [(round(k["us_per_step"], 1), k["name"][:60]) for k in run["kernels"][:4]]
                print("SUMMARY kp", name, bundle, "batch", run["batch"], "wall_ms", round(run["wall_ms_per_step"], 3),
                      "kernel_us", round(run["kernel_us_per_step"], 1), json.dumps(run["kinds_us_per_step"]), top)
    ts = out / f"ts_{name}.json"
    if ts.exists():
        data = json.loads(ts.read_text())
        for cfg, r in data["configs"].items():
            print("SUMMARY engine", name, cfg, "decoder", r.get("decoder"), "b1_ms",
                  r.get("decode_b1", {}).get("ms_per_token"), "latent_ratio", r.get("latent_vs_token", {}).get("ratio"),
                  "s8", r.get("streams_8", {}).get("aggregate_tok_s"), "s32", r.get("streams_32", {}).get("aggregate_tok_s"))
        if data.get("errors"):
            print("SUMMARY engine errors", name, json.dumps(data["errors"])[:600])
PY
