"""The LVR model class (config fields, optional modules) and the deterministic tiny-model factory."""

import hashlib
import json

import torch

from lvr.model import LVRForConditionalGeneration, LVRSettings, load_lvr_model
from lvr.tiny import make_tiny_model, save_tiny_checkpoint, tiny_config

PINNED_K_BIAS = "b8fbdeef1a20ff92"  # sha256[:16] of layers[0].self_attn.k_proj.bias, seed 0


def _digest(model) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def test_tiny_model_is_deterministic_and_seed_dependent():
    a, b, c = make_tiny_model(0), make_tiny_model(0), make_tiny_model(1)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)
    # independent of the global RNG state
    torch.manual_seed(12345)
    assert _digest(make_tiny_model(0)) == _digest(a)


def test_tiny_weights_are_pinned_across_machines():
    """Bit-identical weights on any machine: a pinned digest of one small tensor (CPU torch.Generator stream)."""
    m = make_tiny_model(0)
    t = m.model.language_model.layers[0].self_attn.k_proj.bias.detach().numpy()
    assert hashlib.sha256(t.tobytes()).hexdigest()[:16] == PINNED_K_BIAS
    assert m.config.text_config.hidden_size == 64 and m.config.text_config.num_hidden_layers == 2
    assert m.config.vision_config.depth == 2


def test_default_config_has_no_lvr_modules_and_records_fields(tmp_path):
    m = make_tiny_model(0)
    assert m.lvr_head is None and m.lvr_latent_end_emb is None
    assert m.config.lvr_head is False and m.config.lvr_start_id == 151665 and m.config.loss_lvr_fct == "mse"
    m.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["lvr_head"] is False and cfg["latent_end_token"] is False and cfg["lvr_id"] == 151666


def test_head_and_latent_end_built_only_when_config_asks_and_reload_unchanged(tmp_path):
    ck = save_tiny_checkpoint(tmp_path / "ck", seed=3, lvr_head=True, latent_end_token=True)
    m = load_lvr_model(str(ck))
    assert m.lvr_head is not None and m.lvr_latent_end_emb is not None
    names = {n for n, _ in m.named_parameters()}
    assert {"lvr_head.ln_q.weight", "lvr_head.mlp.0.weight", "lvr_head.mlp.2.bias", "lvr_latent_end_emb"} <= names
    ref = make_tiny_model(3, lvr_head=True, latent_end_token=True)
    assert torch.equal(m.lvr_head.mlp[0].weight, ref.lvr_head.mlp[0].weight)  # loaded, not re-randomised
    assert torch.allclose(m.lvr_latent_end_emb.norm(), torch.tensor(64.0).sqrt(), rtol=1e-4)
    glu = LVRForConditionalGeneration(tiny_config(lvr_head=True, lvr_head_type="glu"))
    assert glu.lvr_head.gate_proj.out_features == 128


def test_upstream_style_config_loads_unchanged(tmp_path):
    """An upstream checkpoint's config.json: qwen2_5_vl + QwenWithLVR architecture + LVR fields, rope_scaling."""
    ck = save_tiny_checkpoint(tmp_path / "up", seed=0)
    cfg = json.loads((ck / "config.json").read_text())
    cfg["architectures"] = ["QwenWithLVR"]
    cfg.update({"lvr_head": False, "latent_end_token": False, "lvr_id": 151666, "lvr_start_id": 151665,
                "lvr_end_id": 151668, "lvr_latent_end_id": 151667, "loss_lvr_fct": "mse", "use_cache": True})
    (ck / "config.json").write_text(json.dumps(cfg))
    m = load_lvr_model(str(ck))
    assert LVRSettings.from_config(m.config).lvr_end_id == 151668
    assert _digest(m) == _digest(make_tiny_model(0))


def test_transformers_4_54_flat_config_with_rope_scaling_loads(tmp_path):
    """Upstream checkpoints were saved by transformers 4.54: text fields at top level, rope_scaling mrope."""
    ck = save_tiny_checkpoint(tmp_path / "old", seed=0)
    cfg = json.loads((ck / "config.json").read_text())
    text = cfg.pop("text_config")
    flat = {k: v for k, v in text.items() if k not in ("rope_parameters", "model_type", "layer_types")}
    flat.update(cfg)
    flat.update({"rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]}, "rope_theta": 1000000.0,
                 "architectures": ["QwenWithLVR"], "lvr_head": False, "latent_end_token": False,
                 "transformers_version": "4.54.0"})
    (ck / "config.json").write_text(json.dumps(flat))
    m = load_lvr_model(str(ck))
    assert list(m.model.language_model.rotary_emb.mrope_section) == [2, 3, 3]
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert torch.equal(m(input_ids=ids).logits, make_tiny_model(0)(input_ids=ids).logits)
