"""Exports the demo bundle's tiny model (models/make_demo_bundle.py's config, seed 0; with "head": true plus the
simple LVR head) with --fused-decoder into the directory named by the payload ({"dest": DIR, "head": bool});
prints {"dest": DIR, "verification": {...}}."""

import json
import sys
import tempfile
from pathlib import Path

from lvr.export import export_bundle
from lvr.tiny import TINY_OPTIONS, save_tiny_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "models"))
from make_demo_bundle import TINY  # noqa: E402 - the demo bundle's shapes, one definition


def main() -> None:
    payload = json.loads(Path(sys.argv[1]).read_text())
    dest = payload["dest"]
    head = TINY_OPTIONS["lvr_head"] if payload.get("head") else {}
    with tempfile.TemporaryDirectory() as work:
        src = save_tiny_checkpoint(Path(work) / "ckpt", seed=0, **TINY, **head)
        m = export_bundle(str(src), dest, precision="fp32", run_id="fused-test", fused_decoder=True,
                          log=lambda s: print(s, file=sys.stderr))
    print(json.dumps({"dest": dest, "verification": m["verification"]}))


if __name__ == "__main__":
    main()
