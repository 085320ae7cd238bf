"""Checkpoints under the run's checkpoint URI (local folder or s3:// MinIO prefix).

Layout (TRAINING-EVAL-REFERENCE §5.2/§5.4)::

    <checkpoint.uri>/step-<N>/
        model/               HF folder: config.json, model.safetensors, tokenizer + processor files
        trainer_state.pt     optimizer, LR schedule, RNG states, data-stream position, step
        MANIFEST.json        every file with size and sha256, step, stage, run id, world size, strategy, versions
        _COMPLETE            written last; a step without it does not exist for readers

Resume takes the newest step with `_COMPLETE` and verifies every checksum before use.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from .. import storage as store
from ..bundle import sha256_file
from .errors import ConfigError

MARKER = "_COMPLETE"
MANIFEST = "MANIFEST.json"
_STEP_RE = re.compile(r"^step-(\d+)/")


def build_manifest(local: Path, extra: dict) -> dict:
    files = {}
    for p in sorted(local.rglob("*")):
        if p.is_file() and p.name not in (MANIFEST, MARKER):
            files[str(p.relative_to(local))] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
    return {"formatVersion": 1, **extra, "files": files}


def verify_dir(local: Path, manifest: dict) -> None:
    for rel, meta in manifest["files"].items():
        p = local / rel
        if not p.is_file():
            raise ConfigError(f"checkpoint file {rel} is missing")
        if p.stat().st_size != meta["size"] or sha256_file(p) != meta["sha256"]:
            raise ConfigError(f"checkpoint file {rel} does not match its MANIFEST.json checksum")


class CheckpointStore:
    def __init__(self, uri: str, keep_last: int | None = None):
        self.uri, self.keep_last = uri.rstrip("/"), keep_last

    def step_uri(self, step: int) -> str:
        return store.join(self.uri, f"step-{step}")

    def _steps(self) -> tuple[set[int], set[int]]:
        seen, complete = set(), set()
        for rel in store.list_files(self.uri):
            m = _STEP_RE.match(rel)
            if m:
                seen.add(int(m.group(1)))
                if rel == f"step-{m.group(1)}/{MARKER}":
                    complete.add(int(m.group(1)))
        return seen, complete

    def complete_steps(self) -> list[int]:
        return sorted(self._steps()[1])

    def latest(self) -> int | None:
        steps = self.complete_steps()
        return steps[-1] if steps else None

    def save(self, local: Path, step: int, extra: dict) -> dict:
        """Upload a staged checkpoint folder: files, then MANIFEST.json, then the marker; then apply retention."""
        manifest = build_manifest(local, {"step": step, **extra})
        dest = self.step_uri(step)
        if store.exists(store.join(dest, MARKER)):
            store.delete_prefix(dest)  # a re-save of the same step replaces it
        store.upload_dir(local, dest, skip=(MANIFEST, MARKER))
        store.write_bytes(store.join(dest, MANIFEST), json.dumps(manifest, indent=2).encode())
        store.write_bytes(store.join(dest, MARKER), b"")
        self._retain(step)
        return manifest

    def _retain(self, newest: int) -> None:
        if not self.keep_last:
            return
        seen, complete = self._steps()
        keep = sorted(complete)[-self.keep_last:]
        for s in seen:
            if s not in keep and s < newest:
                store.delete_prefix(self.step_uri(s))

    def fetch(self, step: int, dest: Path) -> dict:
        """Download a complete checkpoint and verify every file against its manifest."""
        src = self.step_uri(step)
        if not store.exists(store.join(src, MARKER)):
            raise ConfigError(f"checkpoint {src} has no {MARKER} marker")
        if dest.exists():
            shutil.rmtree(dest)
        store.download_dir(src, dest)
        manifest = json.loads((dest / MANIFEST).read_text())
        verify_dir(dest, manifest)
        return manifest
