"""Builds the demo bundle committed under models/lvr-tiny-demo (run from the repository root):

    PY=$(node scripts/stack/cli.mjs status | python3 -c 'import json,sys;print(json.load(sys.stdin)["services"]["python"]["python"])')
    PYTHONPATH=workers $PY models/make_demo_bundle.py models/lvr-tiny-demo

A deterministic tiny random LVR model (Qwen2.5-VL architecture, hidden size 16, 2 layers, full Qwen2.5 vocabulary
and tokenizer with the four LVR tokens), exported by the workers' exporter (fp32, verified against PyTorch).
Its answers are random text: it demonstrates the serving path, not model quality.
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from lvr.tiny import save_tiny_checkpoint

TINY = dict(hidden=16, layers=2, heads=2, kv_heads=1, intermediate=32, vision_hidden=16, vision_layers=2, vision_heads=2)


def main() -> None:
    dest = Path(sys.argv[1] if len(sys.argv) > 1 else "models/lvr-tiny-demo")
    with tempfile.TemporaryDirectory() as work:
        src = save_tiny_checkpoint(Path(work) / "ckpt", seed=0, **TINY)
        if dest.exists():
            shutil.rmtree(dest)
        subprocess.run(
            [sys.executable, "-m", "lvr", "export", str(src), str(dest), "--precision", "fp32", "--run-id", "demo"],
            check=True,
        )


if __name__ == "__main__":
    main()
