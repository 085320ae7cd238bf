"""Helpers shared by the LVR worker tests (kept out of conftest so imports are unambiguous)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORKERS = REPO / "workers"


def run_cli(*args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m lvr ARGS` the way `npm run worker --` runs it (cwd = repo root, PYTHONPATH=workers)."""
    e = dict(os.environ)
    e["PYTHONPATH"] = str(WORKERS) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "lvr", *args], cwd=REPO, env=e, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"python -m lvr {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


def image_message(width: int, height: int, seed: int, text: str = "Describe the region.") -> list[dict]:
    return [{"role": "user", "content": [{"type": "image", "image": {"width": width, "height": height, "seed": seed}},
                                         {"type": "text", "text": text}]}]
