"""Deterministic tiny random Qwen2.5-VL-architecture LVR models for tests (CPU, seconds).

Same seed -> bit-identical weights on any machine: every parameter is drawn from its own CPU `torch.Generator`
seeded from (seed, crc32(parameter name)), independent of module construction order and of the global RNG.
"""

from __future__ import annotations

import json
import shutil
import zlib
from pathlib import Path

import torch
from transformers import Qwen2_5_VLConfig

from . import tokens as T
from .model import LVRForConditionalGeneration
from .preprocess import CHAT_TEMPLATE_PATH, ImageConfig

TINY_IMAGE_CONFIG = ImageConfig(min_pixels=4 * 28 * 28, max_pixels=64 * 28 * 28)
GENERATION_DEFAULTS = {  # Qwen2.5-VL-Instruct generation_config.json (LVR-SPEC §4.6)
    "do_sample": True, "temperature": 0.1, "top_k": 1, "top_p": 0.001, "repetition_penalty": 1.05,
    "eos_token_id": [T.IM_END_ID, T.ENDOFTEXT_ID], "pad_token_id": T.PAD_ID, "bos_token_id": T.ENDOFTEXT_ID,
}


def tiny_config(hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2, intermediate: int = 128,
                vision_hidden: int = 32, vision_layers: int = 2, vision_heads: int = 2, vocab: int = 151936,
                tie: bool = True, **lvr_fields) -> Qwen2_5_VLConfig:
    """Tiny config; head_dim = hidden/heads and mrope_section sums to head_dim/2."""
    head_dim = hidden // heads
    half = head_dim // 2
    t = half // 4
    mrope = [t, (half - t) // 2, half - t - (half - t) // 2]
    text = dict(vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                num_attention_heads=heads, num_key_value_heads=kv_heads, rms_norm_eps=1e-6,
                max_position_embeddings=32768, tie_word_embeddings=tie,
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": mrope},
                bos_token_id=T.ENDOFTEXT_ID, eos_token_id=T.IM_END_ID, pad_token_id=None)
    vision = dict(depth=vision_layers, hidden_size=vision_hidden, intermediate_size=2 * vision_hidden,
                  num_heads=vision_heads, out_hidden_size=hidden, patch_size=14, temporal_patch_size=2,
                  spatial_merge_size=2, window_size=112, fullatt_block_indexes=[vision_layers - 1], in_channels=3,
                  tokens_per_second=2)
    cfg = Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=tie,
                           image_token_id=T.IMAGE_PAD_ID, video_token_id=T.VIDEO_PAD_ID,
                           vision_start_token_id=T.VISION_START_ID, vision_end_token_id=T.VISION_END_ID,
                           **lvr_fields)
    cfg.architectures = ["LVRForConditionalGeneration"]
    return cfg


def _fill(name: str, p: torch.Tensor, seed: int) -> None:
    g = torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63))
    noise = torch.randn(p.shape, generator=g, dtype=torch.float32)
    if name.endswith("lvr_latent_end_emb"):
        value = noise / noise.norm() * p.numel() ** 0.5
    elif p.ndim == 1 and ("norm" in name or "ln_q" in name) and name.endswith("weight"):
        value = 1.0 + 0.1 * noise
    elif p.ndim == 1:
        value = 0.02 * noise
    elif "embed_tokens" in name:
        value = noise
    else:
        fan_in = p[0].numel()
        value = noise / fan_in**0.5
    p.copy_(value.to(p.dtype))


#: Options of a `tiny:SEED:OPTION[,OPTION]` source -> make_tiny_model keyword arguments.
TINY_OPTIONS = {"latent_end": {"latent_end": True}, "lvr_head": {"lvr_head": True},
                "glu_head": {"lvr_head": True, "lvr_head_type": "glu"}}


def parse_tiny_spec(spec: str) -> tuple[int, dict]:
    """`SEED[:OPTION[,OPTION...]]` (what follows `tiny:`) -> (seed, make_tiny_model kwargs).

    `latent_end`: also build the learned latent-end vector (LVR-SPEC §1.4), so that the model (and a bundle exported
    from it) can decode with the `latent` strategy. `lvr_head` / `glu_head`: add the 'simple' / 'glu' LVR head
    (LVR-SPEC §1.3, §4.5). The other weights are unchanged: each parameter has its own seed.
    """
    seed_text, _, opts = spec.partition(":")
    try:
        seed = int(seed_text or 0)
    except ValueError:
        raise ValueError(f"tiny source: seed must be an integer, got {seed_text!r}") from None
    kwargs: dict = {}
    for opt in filter(None, opts.split(",")):
        if opt not in TINY_OPTIONS:
            raise ValueError(f"tiny source: unknown option {opt!r}; expected one of {sorted(TINY_OPTIONS)}")
        kwargs.update(TINY_OPTIONS[opt])
    return seed, kwargs


@torch.no_grad()
def make_tiny_model(seed: int = 0, latent_end: bool = False, **cfg_kwargs) -> LVRForConditionalGeneration:
    """Tiny LVR model (fp32, eval mode, eager attention) with deterministic weights.

    `latent_end=True` adds `lvr_latent_end_emb` (config `latent_end_token`): a standard normal vector rescaled to L2
    norm sqrt(hidden), drawn from its own seeded generator, so every other weight is identical to the plain model.
    """
    if latent_end:
        cfg_kwargs["latent_end_token"] = True
    cfg = tiny_config(**cfg_kwargs)
    cfg._attn_implementation = "eager"
    torch_state = torch.random.get_rng_state()
    try:
        model = LVRForConditionalGeneration(cfg)
    finally:
        torch.random.set_rng_state(torch_state)
    randomize_weights_(model, seed)
    model.eval()
    return model


@torch.no_grad()
def randomize_weights_(model: torch.nn.Module, seed: int) -> None:
    """Deterministic weights for any Qwen2.5-VL-architecture module (per-parameter generators, see module doc)."""
    for name, p in model.named_parameters():
        _fill(name, p, seed)
    model.tie_weights()


def write_tokenizer_files(dest: Path) -> None:
    """tokenizer.json + tokenizer_config.json (Qwen2.5 + LVR tokens) and chat_template.jinja into `dest`."""
    src = T.qwen_tokenizer_dir()
    tok = T.add_lvr_tokens_to_tokenizer_json(json.loads((src / "tokenizer.json").read_text()))
    cfg = T.add_lvr_tokens_to_tokenizer_config(json.loads((src / "tokenizer_config.json").read_text()))
    cfg.pop("chat_template", None)  # the text-only Qwen2.5 template; the VL template ships as chat_template.jinja
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False))
    (dest / "tokenizer_config.json").write_text(json.dumps(cfg, ensure_ascii=False, indent=2))
    shutil.copyfile(CHAT_TEMPLATE_PATH, dest / "chat_template.jinja")


def save_tiny_checkpoint(dest: str | Path, seed: int = 0, **cfg_kwargs) -> Path:
    """Write an HF checkpoint folder for a tiny model (weights, tokenizer, chat template, generation/preprocessor)."""
    dest = Path(dest)
    model = make_tiny_model(seed, **cfg_kwargs)
    model.save_pretrained(dest)
    write_tokenizer_files(dest)
    (dest / "generation_config.json").write_text(json.dumps(GENERATION_DEFAULTS, indent=2))
    write_preprocessor_config(dest, TINY_IMAGE_CONFIG)
    return dest


def write_preprocessor_config(dest: Path, pre: ImageConfig) -> None:
    """preprocessor_config.json of a Qwen2-VL image processor with `pre`'s numbers (bicubic resampling)."""
    (dest / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "Qwen2VLImageProcessor", "patch_size": pre.patch_size,
        "temporal_patch_size": pre.temporal_patch_size, "merge_size": pre.merge_size,
        "min_pixels": pre.min_pixels, "max_pixels": pre.max_pixels, "image_mean": list(pre.image_mean),
        "image_std": list(pre.image_std), "rescale_factor": pre.rescale_factor, "resample": 3}, indent=2))
