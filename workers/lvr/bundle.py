"""Bundle manifest, checksums and completion marker (docs/bundle-format.md)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

FORMAT = "lvr-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MARKER = "_COMPLETE"
#: `manifest.precision` values (docs/bundle-format.md, "Precision and dtypes").
PRECISIONS = ("fp32", "fp16", "int4", "int4-fp16")


class BundleError(RuntimeError):
    """A bundle is incomplete, tampered with, or of an unknown format."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_entries(folder: Path) -> list[dict]:
    """size + sha256 of every file in the folder except the manifest and the marker (sorted by path)."""
    out = []
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name not in (MANIFEST, MARKER):
            out.append({"path": p.relative_to(folder).as_posix(), "size": p.stat().st_size, "sha256": sha256_file(p)})
    return out


def write_manifest(folder: Path, manifest: dict) -> Path:
    """Fill `files` and write manifest.json (the marker is separate: `write_marker`, called last)."""
    manifest = dict(manifest)
    manifest["format"], manifest["format_version"] = FORMAT, FORMAT_VERSION
    manifest["files"] = file_entries(folder)
    path = folder / MANIFEST
    path.write_text(json.dumps(manifest, indent=2, sort_keys=False))
    return path


def write_marker(folder: Path) -> Path:
    path = folder / MARKER
    path.write_text(json.dumps({"manifest_sha256": sha256_file(folder / MANIFEST)}))
    return path


def read_manifest(folder: str | Path) -> dict:
    return json.loads((Path(folder) / MANIFEST).read_text())


def verify_bundle(folder: str | Path) -> dict:
    """Refuse a bundle without its marker or with any file whose size/sha256 differs; return the manifest."""
    folder = Path(folder)
    marker = folder / MARKER
    if not marker.is_file():
        raise BundleError(f"{folder}: no {MARKER} marker: the bundle is incomplete (export still running or failed)")
    if not (folder / MANIFEST).is_file():
        raise BundleError(f"{folder}: {MANIFEST} missing")
    want = json.loads(marker.read_text() or "{}").get("manifest_sha256")
    if want and sha256_file(folder / MANIFEST) != want:
        raise BundleError(f"{folder}: {MANIFEST} does not match the checksum in {MARKER}")
    manifest = read_manifest(folder)
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{folder}: unsupported bundle format {manifest.get('format')} v{manifest.get('format_version')}")
    for entry in manifest["files"]:
        p = folder / entry["path"]
        if not p.is_file():
            raise BundleError(f"{folder}: file {entry['path']} listed in the manifest is missing")
        if p.stat().st_size != entry["size"]:
            raise BundleError(f"{folder}: {entry['path']} has size {p.stat().st_size}, manifest says {entry['size']}")
        if sha256_file(p) != entry["sha256"]:
            raise BundleError(f"{folder}: checksum mismatch for {entry['path']} (sha256 differs from the manifest)")
    return manifest
