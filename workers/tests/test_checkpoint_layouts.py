"""Checkpoints written by plain `transformers` classes, in every layout we claim to load, load with every weight,
export, and decode exactly like transformers' own `generate`; a checkpoint that does not match its config.json is
refused with the keys named (export exit 2)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from transformers import Qwen2_5_VLForConditionalGeneration

from _lvr_helpers import image_message, run_cli
from _plain_checkpoints import LAYOUTS, edit_config, edit_weights, weight_keys, write_plain_checkpoint
from lvr import tokens as T
from lvr.backends import OrtBackend
from lvr.bundle import MARKER, read_manifest
from lvr.decoding import LVROptions, SamplingParams, generate
from lvr.model import CheckpointError, load_lvr_model
from lvr.preprocess import build_prompt
from lvr.tiny import TINY_IMAGE_CONFIG

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("tie", [True, False])
def test_every_layout_loads_every_weight(tmp_path, layout, tie):
    folder, expected = write_plain_checkpoint(tmp_path / "ck", layout, tie)
    keys = weight_keys(folder)
    if layout == "modules":
        assert any(k.startswith("model.language_model.layers.") for k in keys)
    else:  # the layout of the releases: the language model directly under `model.`
        assert "model.layers.0.self_attn.q_proj.weight" in keys and "visual.patch_embed.proj.weight" in keys
    assert ("lm_head.weight" in keys) == (not tie)
    model = load_lvr_model(folder)
    state = model.state_dict()
    assert set(expected) <= set(state)
    differing = [k for k, v in expected.items() if not torch.equal(state[k], v)]
    assert differing == []
    assert model.config.text_config.hidden_size == 64 and model.config.tie_word_embeddings is tie
    assert list(model.model.language_model.rotary_emb.mrope_section) == [2, 3, 3]
    if layout == "upstream_lvr":
        assert model.lvr.lvr_head and model.lvr.latent_end_token


@pytest.mark.parametrize("layout,tie", [("release", True), ("release", False), ("modules", True)])
def test_exported_bundle_decodes_like_transformers_generate(tmp_path, layout, tie):
    folder, _ = write_plain_checkpoint(tmp_path / "ck", layout, tie)
    bundle = tmp_path / "bundle"
    run_cli("export", str(folder), str(bundle), "--precision", "fp32")
    manifest = read_manifest(bundle)
    tok = T.load_tokenizer(folder)
    prompt = build_prompt(image_message(112, 84, seed=5, text="What is in the picture?"), tok,
                          image_cfg=TINY_IMAGE_CONFIG)
    steps, eos = 16, [T.IM_END_ID, T.ENDOFTEXT_ID]
    plain = Qwen2_5_VLForConditionalGeneration.from_pretrained(folder, dtype=torch.float32,
                                                               attn_implementation="eager").eval()
    with torch.no_grad():
        ids = torch.tensor([prompt.input_ids])
        out = plain.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                             mm_token_type_ids=(ids == T.IMAGE_PAD_ID).int(),  # what the HF processor adds
                             pixel_values=torch.from_numpy(prompt.pixel_values[0]),
                             image_grid_thw=torch.tensor(prompt.image_grids), do_sample=False,
                             repetition_penalty=1.0, max_new_tokens=steps, eos_token_id=eos, pad_token_id=T.PAD_ID)
    want = out[0, ids.shape[1]:].tolist()
    assert len(want) >= 8 and len(set(want)) >= 4  # a varied continuation, not one repeated token
    assert not set(want) & {T.LVR_START_ID, T.LVR_ID}  # text only: the same rules on both sides
    params = SamplingParams(max_new_tokens=steps, do_sample=False, repetition_penalty=1.0, eos_ids=tuple(eos))
    got = generate(OrtBackend(bundle, manifest), prompt, params, LVROptions())
    assert got.output_ids == want


def test_manifest_records_digest_of_source_weights(tmp_path):
    a, _ = write_plain_checkpoint(tmp_path / "a", "release")
    m = json.loads(run_cli("export", str(a), str(tmp_path / "ba"), "--no-verify").stdout)
    assert m["files"] > 0
    src = read_manifest(tmp_path / "ba")["provenance"]["source_weights"]
    file_sha = hashlib.sha256((a / "model.safetensors").read_bytes()).hexdigest()
    assert src["files"] == {"model.safetensors": file_sha}
    assert src["sha256"] == hashlib.sha256(f"model.safetensors {file_sha}\n".encode()).hexdigest()
    # another source (one weight changed) gives another digest
    edit_weights(a, lambda w: w.update({"model.norm.weight": w["model.norm.weight"] + 1}))
    run_cli("export", str(a), str(tmp_path / "bb"), "--no-verify")
    assert read_manifest(tmp_path / "bb")["provenance"]["source_weights"]["sha256"] != src["sha256"]


BROKEN = {
    "missing layer weight": (lambda f: edit_weights(f, lambda w: w.pop("model.layers.1.mlp.up_proj.weight")),
                             "missing weights", "model.language_model.layers.1.mlp.up_proj.weight"),
    "missing untied lm_head": (lambda f: edit_config(f, tie_word_embeddings=False), "missing weights",
                               "lm_head.weight"),
    "unexpected weight": (lambda f: edit_weights(f, lambda w: w.update({"model.layers.0.extra.weight":
                                                                          torch.zeros(2)})),
                          "unexpected weights", "model.layers.0.extra.weight"),
    "head weights the config does not ask for": (
        lambda f: edit_weights(f, lambda w: w.update({"lvr_head.ln_q.weight": torch.ones(64)})),
        "unexpected weights", "lvr_head.ln_q.weight"),
    "latent-end vector the config asks for but lacks": (
        lambda f: edit_config(f, latent_end_token=True), "missing weights", "lvr_latent_end_emb"),
    "wrong shape": (lambda f: edit_weights(f, lambda w: w.update({"model.norm.weight": torch.ones(32)})),
                    "wrong shape", "model.language_model.norm.weight"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_checkpoint_not_matching_its_config_is_refused_naming_the_keys(tmp_path, case):
    folder, _ = write_plain_checkpoint(tmp_path / "ck", "release")
    breaker, kind, key = BROKEN[case]
    breaker(folder)
    with pytest.raises(CheckpointError, match=kind) as err:
        load_lvr_model(folder)
    assert key in str(err.value)


def test_export_of_a_broken_checkpoint_exits_2_naming_the_key_and_writes_no_bundle(tmp_path):
    folder, _ = write_plain_checkpoint(tmp_path / "ck", "release")
    edit_weights(folder, lambda w: w.pop("model.layers.0.self_attn.k_proj.bias"))
    proc = run_cli("export", str(folder), str(tmp_path / "b"), check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "model.language_model.layers.0.self_attn.k_proj.bias" in proc.stderr and "missing weights" in proc.stderr
    assert not (tmp_path / "b" / MARKER).exists()
