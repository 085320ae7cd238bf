"""`tiny:SEED[:latent_end]` sources: the tiny factory's latent-end option (bundles that can run `strategy: latent`)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from lvr.export import ExportError, resolve_source
from lvr.tiny import make_tiny_model, parse_tiny_spec


def test_parse_tiny_spec():
    assert parse_tiny_spec("0") == (0, {})
    assert parse_tiny_spec("7:latent_end") == (7, {"latent_end": True})
    assert parse_tiny_spec("") == (0, {})
    with pytest.raises(ValueError, match="unknown option 'head'"):
        parse_tiny_spec("1:head")
    with pytest.raises(ValueError, match="seed must be an integer"):
        parse_tiny_spec("x")


def test_latent_end_adds_only_the_vector_and_keeps_every_other_weight():
    plain = make_tiny_model(0).state_dict()
    with_end = make_tiny_model(0, latent_end=True)
    sd = with_end.state_dict()
    assert set(sd) - set(plain) == {"lvr_latent_end_emb"}
    assert all(torch.equal(sd[k], plain[k]) for k in plain)
    v = with_end.lvr_latent_end_emb.detach()
    assert v.shape == (64,) and math.isclose(float(v.norm()), 8.0, rel_tol=1e-5)  # norm sqrt(H), LVR-SPEC §1.4
    assert torch.equal(v, make_tiny_model(0, latent_end=True).lvr_latent_end_emb.detach())  # deterministic
    assert with_end.config.latent_end_token is True


def test_tiny_source_with_latent_end_writes_a_checkpoint_that_has_it(tmp_path):
    ck = resolve_source("tiny:3:latent_end", tmp_path)
    assert json.loads((ck / "config.json").read_text())["latent_end_token"] is True
    plain = resolve_source("tiny:3", tmp_path / "plain")
    assert json.loads((plain / "config.json").read_text())["latent_end_token"] is False
    with pytest.raises(ExportError, match="unknown option"):
        resolve_source("tiny:3:bogus", tmp_path / "bad")


def test_head_options_add_only_the_head():
    assert parse_tiny_spec("2:latent_end,glu_head") == (2, {"latent_end": True, "lvr_head": True,
                                                            "lvr_head_type": "glu"})
    plain = make_tiny_model(0).state_dict()
    for option, prefix in (("lvr_head", "lvr_head.ln_q"), ("glu_head", "lvr_head.gate_proj")):
        seed, kwargs = parse_tiny_spec(f"0:{option}")
        sd = make_tiny_model(seed, **kwargs).state_dict()
        extra = set(sd) - set(plain)
        assert extra and all(k.startswith("lvr_head.") for k in extra) and any(k.startswith(prefix) for k in extra)
        assert all(torch.equal(sd[k], plain[k]) for k in plain)
