"""Copies a tiny bundle with its vision graph exported as bundles before `image_bytes` were (float `pixel_values`
input, computed on the host), so the TS parity test can check that such bundles still decode the same.

Usage: python float_vision_bundle.py SPEC SRC DEST   (SPEC: the `tiny:` spec SRC was exported from, e.g. 0:latent_end)
"""
import shutil
import sys
from pathlib import Path


def main() -> int:
    from lvr import bundle as B
    from lvr.export import export_vision_graph
    from lvr.tiny import make_tiny_model, parse_tiny_spec

    spec, src, dest = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    shutil.copytree(src, dest)
    seed, kwargs = parse_tiny_spec(spec)
    export_vision_graph(make_tiny_model(seed, **kwargs).eval(), dest / "vision.onnx", image_cfg=None)
    manifest = B.read_manifest(dest)
    manifest["io_dtypes"].pop("image_bytes", None)
    manifest["io_dtypes"]["pixel_values"] = "float32"
    B.write_manifest(dest, manifest)  # the files' sizes and digests again, then the marker
    B.write_marker(dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
