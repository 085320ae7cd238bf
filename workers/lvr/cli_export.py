"""Subcommands `export`, `verify` and `golden` of the worker CLI."""

from __future__ import annotations

import json
import sys

from .bundle import PRECISIONS


def _export(args) -> int:
    from .export import ExportError, export_bundle
    from .model import CheckpointError
    from .storage import StorageConfigError

    try:
        m = export_bundle(args.src, args.dest, precision=args.precision, run_id=args.run_id,
                          max_error=args.max_error, verify=not args.no_verify, fused_decoder=args.fused_decoder,
                          **({} if args.lvr_steps is None else {"lvr_steps": args.lvr_steps}),
                          log=lambda s: print(s, file=sys.stderr))
    except (StorageConfigError, CheckpointError) as e:
        print(f"[export] {e}", file=sys.stderr)
        return 2
    except ExportError as e:
        print(f"[export] FAILED: {e}", file=sys.stderr)
        return 3
    print(json.dumps({"dest": args.dest, "precision": m["precision"], "verification": m.get("verification"),
                      "files": len(m["files"]), "bytes": sum(f["size"] for f in m["files"])}))
    return 0


def _verify(args) -> int:
    from .bundle import BundleError
    from .golden import open_bundle

    try:
        with open_bundle(args.bundle) as (_, manifest):
            print(json.dumps({"bundle": args.bundle, "ok": True, "precision": manifest["precision"],
                              "files": len(manifest["files"])}))
    except BundleError as e:
        print(f"[verify] REJECTED: {e}", file=sys.stderr)
        return 4
    return 0


def _golden(args) -> int:
    from .bundle import BundleError
    from .golden import run_golden

    try:
        out = run_golden(args.bundle, args.requests, args.out)
    except BundleError as e:
        print(f"[golden] REJECTED: {e}", file=sys.stderr)
        return 4
    print(json.dumps({"out": args.out, "cases": len(out["cases"])}))
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("export",
                       help="HF checkpoint (dir, s3://, tiny:SEED[:latent_end]) -> model bundle (dir or s3://)")
    p.add_argument("src")
    p.add_argument("dest")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    p.add_argument("--run-id", default=None)
    p.add_argument("--max-error", type=float, default=None, help="bound on max relative error (default by precision)")
    p.add_argument("--no-verify", action="store_true", help="skip the onnxruntime-vs-PyTorch check")
    p.add_argument("--fused-decoder", action="store_true",
                   help="also write graphs.decoder_fused (GroupQueryAttention over a static KV buffer; GPU serving)")
    p.add_argument("--lvr-steps", type=int, default=None,
                   help="latent steps of the bundle's default decoding (manifest lvr.steps; default 8)")
    p.set_defaults(func=_export)

    v = sub.add_parser("verify", help="check a bundle's completion marker and checksums")
    v.add_argument("bundle")
    v.set_defaults(func=_verify)

    g = sub.add_parser("golden", help="golden outputs of a bundle for the TypeScript parity tests")
    g.add_argument("bundle")
    g.add_argument("requests")
    g.add_argument("out")
    g.set_defaults(func=_golden)
