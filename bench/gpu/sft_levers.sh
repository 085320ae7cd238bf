#!/usr/bin/env bash
# Stage-1 SFT levers on ONE GPU, old path and new configurations in one go (same machine, same batches):
#   legacy   today's path: autocast over fp32 weights, flash_varlen_torch, full checkpointing, in-step collate
#   default  new defaults: FSDP2 bf16 params + fp32 master at world 1, flash_varlen_torch, pinned prefetch
#   ckpt50   default + checkpointing on every other decoder layer (more memory, less recompute)
#   compile  default + regional torch.compile (MLPs, RMS norms)
# Each run is capped (timeout) so one failure/OOM does not stop the others; total < 6 min. Writes $OUT/*.json.
set -u
OUT=${OUT:-/tmp/bench-out}; export OUT; mkdir -p "$OUT"
cd "$(dirname "$0")"
COMMON="--steps ${STEPS:-5} --warmup ${WARMUP:-2} ${EXTRA:-}"
run() { local tag=$1 limit=$2; shift 2
  timeout "$limit" python train_sft.py $COMMON --tag "$tag" "$@" > "$OUT/log_$tag.txt" 2>&1 || echo "RUN $tag rc=$?"
  grep '^BENCH' "$OUT/log_$tag.txt" || tail -n 5 "$OUT/log_$tag.txt"; }
run legacy 75 --legacy --attn flash_varlen_torch
run default 70
run ckpt50 70 --ckpt-ratio 0.5
run compile 130 --compile
python - <<'PY'
import json, os, pathlib
out = pathlib.Path(os.environ["OUT"]); rows = {}
for tag in ("legacy", "default", "ckpt50", "compile"):
    f = out / f"train_sft_w1_{tag}.json"
    if f.exists():
        rows[tag] = json.loads(f.read_text())
base = rows.get("legacy")
for tag, r in rows.items():
    ratio = r["tokens_per_s"] / base["tokens_per_s"] if base else None
    print("SUMMARY", json.dumps({"run": tag, "card": r["card"], "tok_s": round(r["tokens_per_s"]),
          "mfu": r["mfu"], "peak_gib": r["peak_mem_gib"], "speedup_vs_legacy": ratio,
          "losses": r["losses"], "levers": r["levers"]}))
PY
