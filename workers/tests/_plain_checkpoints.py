"""Checkpoint folders written by plain `transformers` classes (never our own save path), in each layout we load."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import Qwen2_5_VLForConditionalGeneration

from lvr import tokens as T
from lvr.tiny import GENERATION_DEFAULTS, randomize_weights_, tiny_config, write_tokenizer_files

#: Layouts: the Qwen2.5-VL releases / transformers `save_pretrained` (`model.layers.*`, `visual.*`) with the release's
#: flat config.json, the module layout (`model.language_model.*`, `model.visual.*`) that newer transformers writes with
#: `save_original_format=False`, and an upstream LVR checkpoint (`QwenWithLVR`, transformers 4.54: release keys plus
#: top-level `lvr_head.*` / `lvr_latent_end_emb`).
LAYOUTS = ("release", "modules", "upstream_lvr")
SEED = 11


def _release_config(cfg: dict) -> dict:
    """config.json as the Qwen2.5-VL-*-Instruct releases ship it: text fields at top level, `rope_scaling` mrope."""
    text = cfg.pop("text_config")
    rope = text.pop("rope_parameters")
    for drop in ("layer_types", "model_type", "dtype", "pad_token_id"):
        text.pop(drop, None)
    cfg.update(text)
    cfg["rope_theta"] = rope["rope_theta"]
    cfg["rope_scaling"] = {"type": "mrope", "mrope_section": rope["mrope_section"]}
    cfg["vision_config"].pop("rope_parameters", None)
    cfg["vision_config"].pop("model_type", None)
    cfg["torch_dtype"] = "bfloat16"
    cfg["transformers_version"] = "4.49.0.dev0"
    cfg.pop("dtype", None)
    return cfg


def _plain_model(tie: bool) -> Qwen2_5_VLForConditionalGeneration:
    cfg = tiny_config(tie=tie)
    cfg.architectures = ["Qwen2_5_VLForConditionalGeneration"]
    cfg._attn_implementation = "eager"
    model = Qwen2_5_VLForConditionalGeneration(cfg).eval()
    randomize_weights_(model, SEED)  # spread-out logits, so greedy picks are never near-ties
    with torch.no_grad():  # small token embeddings: the layers, not the input token, decide the next token (with
        model.model.language_model.embed_tokens.weight.mul_(0.1)  # tied weights it would just repeat its input)
    return model


def write_plain_checkpoint(dest: Path, layout: str, tie: bool = True) -> tuple[Path, dict[str, torch.Tensor]]:
    """A checkpoint folder saved by transformers' Qwen2_5_VLForConditionalGeneration in `layout`; returns the
    folder and the expected module state (module key -> tensor), LVR tensors included."""
    model = _plain_model(tie)
    model.save_pretrained(dest, save_original_format=layout != "modules")
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = json.loads((dest / "config.json").read_text())
    if layout in ("release", "upstream_lvr"):
        cfg = _release_config(cfg)
    if layout == "upstream_lvr":
        hidden = cfg["hidden_size"]
        g = torch.Generator().manual_seed(SEED)
        extra = {"lvr_latent_end_emb": torch.randn(hidden, generator=g),
                 "lvr_head.ln_q.weight": 1 + 0.1 * torch.randn(hidden, generator=g),
                 "lvr_head.ln_q.bias": 0.1 * torch.randn(hidden, generator=g)}
        for i in (0, 2):
            extra[f"lvr_head.mlp.{i}.weight"] = torch.randn(hidden, hidden, generator=g) / hidden ** 0.5
            extra[f"lvr_head.mlp.{i}.bias"] = 0.02 * torch.randn(hidden, generator=g)
        weights = load_file(dest / "model.safetensors")
        save_file({**weights, **extra}, dest / "model.safetensors", metadata={"format": "pt"})
        expected.update(extra)
        cfg.update({"architectures": ["QwenWithLVR"], "lvr_head": True, "lvr_head_type": "simple",
                    "latent_end_token": True, "lvr_id": T.LVR_ID, "lvr_start_id": T.LVR_START_ID,
                    "lvr_end_id": T.LVR_END_ID, "lvr_latent_end_id": T.LVR_LATENT_END_ID, "loss_lvr_fct": "mse",
                    "loss_mode_switch_fct": "mse", "transformers_version": "4.54.0"})
    (dest / "config.json").write_text(json.dumps(cfg, indent=2))
    write_tokenizer_files(dest)
    (dest / "generation_config.json").write_text(json.dumps(GENERATION_DEFAULTS))
    return dest, expected


def weight_keys(folder: Path) -> set[str]:
    return set(load_file(folder / "model.safetensors"))


def edit_weights(folder: Path, edit) -> None:
    w = load_file(folder / "model.safetensors")
    edit(w)
    save_file(w, folder / "model.safetensors", metadata={"format": "pt"})


def edit_config(folder: Path, **fields) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(fields)
    (folder / "config.json").write_text(json.dumps(cfg))
