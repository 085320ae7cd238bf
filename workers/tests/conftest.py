"""Shared fixtures: one tiny checkpoint and tiny bundles per test session (exported once, reused)."""

from __future__ import annotations

from pathlib import Path

import pytest

from _lvr_helpers import run_cli  # noqa: E402


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> Path:
    from lvr.tiny import save_tiny_checkpoint

    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny-ckpt"), seed=0)


@pytest.fixture(scope="session")
def tiny_model(tiny_ckpt):
    from lvr.model import load_lvr_model

    return load_lvr_model(str(tiny_ckpt))


@pytest.fixture(scope="session")
def tokenizer(tiny_ckpt):
    from lvr.tokens import load_tokenizer

    return load_tokenizer(tiny_ckpt)


_BUNDLES: dict = {}


@pytest.fixture(scope="session")
def bundle_factory(tmp_path_factory, tiny_ckpt):
    """bundle_factory(precision) -> (folder, manifest); fp32 goes through the CLI, the others through the library."""
    from lvr.export import export_bundle

    def make(precision: str):
        if precision not in _BUNDLES:
            dest = tmp_path_factory.mktemp(f"bundle-{precision}")
            if precision == "fp32":
                run_cli("export", str(tiny_ckpt), str(dest), "--precision", "fp32", "--run-id", "test-run")
                from lvr.bundle import read_manifest

                manifest = read_manifest(dest)
            else:
                manifest = export_bundle(str(tiny_ckpt), str(dest), precision=precision, log=lambda s: None)
            _BUNDLES[precision] = (dest, manifest)
        return _BUNDLES[precision]

    return make
