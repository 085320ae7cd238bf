"""Exporter and golden generator against the stack's real MinIO (s3:// SRC and DEST). Never skipped."""

import os
import uuid

import pytest

from lvr import storage
from lvr.bundle import MANIFEST, MARKER


@pytest.fixture(scope="module")
def s3_env():
    missing = [v for v in storage.ENV_VARS if not os.environ.get(v)]
    if missing:
        pytest.fail(f"MinIO test needs {', '.join(missing)} (run via `npm test` or "
                    f"`eval \"$(node scripts/stack/cli.mjs env)\"`)", pytrace=False)
    return os.environ["LVR_S3_ENDPOINT"]


def _keys(uri):
    c = storage.client()
    bucket, prefix = storage.split_s3(uri)
    return {o.object_name[len(prefix) + 1:] for o in c.list_objects(bucket, prefix=prefix + "/", recursive=True)}


def test_export_from_s3_checkpoint_to_s3_bundle_then_golden_from_s3(s3_env, tiny_ckpt, tmp_path):
    from _lvr_helpers import image_message, run_cli
    from lvr.export import export_bundle
    from lvr.golden import open_bundle, run_golden

    run = uuid.uuid4().hex[:10]
    src = f"s3://lvr-test/{run}/checkpoint"
    dest = f"s3://lvr-test/{run}/bundle"
    names = [p.name for p in sorted(tiny_ckpt.iterdir()) if p.is_file()]
    storage.upload_files(tiny_ckpt, src, names)

    manifest = export_bundle(src, dest, precision="fp32", run_id=run, log=lambda s: None)
    keys = _keys(dest)
    assert {f["path"] for f in manifest["files"]} | {MANIFEST, MARKER} == keys
    assert manifest["provenance"]["source"] == src and manifest["verification"]["passed"] is True

    with open_bundle(dest) as (folder, m):
        assert m["files"] == manifest["files"] and (folder / "decoder.onnx").is_file()
    out = run_golden(dest, _write_requests(tmp_path, image_message), str(tmp_path / "out.json"))
    assert out["cases"][0]["image_grids"] == [[1, 4, 6]]  # 30x50 upscaled to min_pixels: 56x84

    proc = run_cli("verify", dest)
    assert '"ok": true' in proc.stdout

    storage.delete_object(dest, MARKER)  # an s3 bundle without its marker is refused
    proc = run_cli("verify", dest, check=False)
    assert proc.returncode == 4 and "_COMPLETE" in proc.stderr


def _write_requests(tmp_path, image_message):
    import json

    p = tmp_path / "req.json"
    p.write_text(json.dumps([{"id": "a", "messages": image_message(50, 30, seed=9),
                              "sampling": {"max_new_tokens": 3}}]))
    return str(p)


def test_missing_s3_env_gives_a_clear_error(monkeypatch):
    monkeypatch.delenv("LVR_S3_ENDPOINT", raising=False)
    with pytest.raises(storage.StorageConfigError, match="LVR_S3_ENDPOINT"):
        storage.client()
