"""The LVR model on transformers' Qwen2.5-VL (LVR-SPEC §1).

`LVRForConditionalGeneration` is `Qwen2_5_VLForConditionalGeneration` plus the LVR config fields (§1.3) and the
optional ablation modules (§1.4), built only when config.json asks for them. `load_lvr_model(path)` loads every
checkpoint layout in CHECKPOINT_KEY_MAPPING with every weight, or raises `CheckpointError` naming the keys.
"""

from __future__ import annotations

import hashlib
import math
import types
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

from . import tokens as T


@dataclass(frozen=True)
class LVRSettings:
    """LVR fields of config.json with the defaults of LVR-SPEC §1.3."""

    lvr_head: bool = False
    lvr_head_type: str = "simple"
    latent_end_token: bool = False
    lvr_id: int = T.LVR_ID
    lvr_start_id: int = T.LVR_START_ID
    lvr_end_id: int = T.LVR_END_ID
    lvr_latent_end_id: int = T.LVR_LATENT_END_ID
    loss_lvr_fct: str = "mse"
    loss_mode_switch_fct: str | None = None

    @classmethod
    def from_config(cls, config) -> "LVRSettings":
        kw = {}
        for name, default in asdict(cls()).items():
            value = getattr(config, name, None)
            kw[name] = default if value is None else value
        if kw["lvr_head_type"] not in ("simple", "glu"):
            raise ValueError(f"lvr_head_type must be 'simple' or 'glu', got {kw['lvr_head_type']!r}")
        return cls(**kw)

    def apply_to(self, config) -> None:
        for name, value in asdict(self).items():
            setattr(config, name, value)


class LVRHead(nn.Module):
    """'simple' head: LayerNorm(H, eps 1e-6) -> Linear -> GELU(erf) -> Linear (names ln_q, mlp.0, mlp.2)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.ln_q = nn.LayerNorm(hidden, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.ln_q(x))


class LVRHeadGLU(nn.Module):
    """'glu' head: down(act(gate(x)) * up(x)), widths config.intermediate_size, all with bias."""

    def __init__(self, hidden: int, intermediate: int, act: str = "silu"):
        super().__init__()
        from transformers.activations import ACT2FN

        self.gate_proj = nn.Linear(hidden, intermediate, bias=True)
        self.up_proj = nn.Linear(hidden, intermediate, bias=True)
        self.down_proj = nn.Linear(intermediate, hidden, bias=True)
        self.act_fn = ACT2FN[act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class LVRForConditionalGeneration(Qwen2_5_VLForConditionalGeneration):
    """Qwen2.5-VL with the LVR config fields and optional `lvr_head` / `lvr_latent_end_emb`."""

    def __init__(self, config: Qwen2_5_VLConfig):
        super().__init__(config)
        self.lvr = LVRSettings.from_config(config)
        self.lvr.apply_to(config)
        text = config.text_config
        hidden = text.hidden_size
        if self.lvr.lvr_head:
            if self.lvr.lvr_head_type == "glu":
                self.lvr_head = LVRHeadGLU(hidden, text.intermediate_size, getattr(text, "hidden_act", "silu"))
            else:
                self.lvr_head = LVRHead(hidden)
        else:
            self.lvr_head = None
        if self.lvr.latent_end_token:
            v = torch.randn(hidden)
            self.lvr_latent_end_emb = nn.Parameter(v / v.norm() * math.sqrt(hidden))
        else:
            self.lvr_latent_end_emb = None

    # -- pieces used by reference decoding and the exporter -------------------------------------------------------
    @property
    def text_model(self):
        return self.model.language_model

    @property
    def vision_model(self):
        return self.model.visual

    def apply_head(self, hidden: torch.Tensor) -> torch.Tensor:
        """Head output for a latent position (identity when the config has no head)."""
        return hidden if self.lvr_head is None else self.lvr_head(hidden)


#: Values that replace non-finite patch-embedding outputs (upstream's sanitising hook, LVR-SPEC §5.1).
PATCH_EMBED_SANITIZE = {"nan": 0.0, "posinf": 1e4, "neginf": -1e4}


def _fp32_patch_embed_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
    """Qwen2.5-VL's Conv3d patch embedding computed in fp32 whatever the weights' dtype or the autocast around it
    (a bf16 cast of large pixel values overflows to inf); the output comes back in the weights' dtype."""
    x = hidden_states.view(-1, self.in_channels, self.temporal_patch_size, self.patch_size, self.patch_size).float()
    bias = None if self.proj.bias is None else self.proj.bias.float()
    with torch.autocast(device_type=x.device.type, enabled=False):
        out = F.conv3d(x, self.proj.weight.float(), bias, stride=self.proj.stride)
    return out.view(-1, self.embed_dim).to(self.proj.weight.dtype)


def _sanitize_output(module, inputs, output):
    # always applied (no host sync to test for non-finite values first); a no-op on finite outputs
    return torch.nan_to_num(output, **PATCH_EMBED_SANITIZE)


def make_patch_embed_nan_safe(model: LVRForConditionalGeneration) -> None:
    """The NaN-safe patch embedding of the upstream bf16 recipe (LVR-SPEC §5.1): the conv in fp32, then non-finite
    outputs replaced (NaN -> 0, ±inf -> ±1e4) by a forward hook. Idempotent."""
    pe = model.model.visual.patch_embed
    if getattr(pe, "lvr_nan_safe", False):
        return
    pe.forward = types.MethodType(_fp32_patch_embed_forward, pe)
    pe.register_forward_hook(_sanitize_output)
    pe.lvr_nan_safe = True


#: Checkpoint key -> module key, for the layouts we load:
#: - Qwen2.5-VL releases, transformers `save_pretrained` of Qwen2_5_VLForConditionalGeneration, and upstream LVR
#:   (`QwenWithLVR`, transformers 4.54): `visual.*`, `model.{embed_tokens,layers,norm}.*`, `lm_head.*`;
#: - the module layout (transformers >= 4.52 modules, `save_original_format=False`, our own saves):
#:   `model.visual.*`, `model.language_model.*`, `lm_head.*`.
#: `lvr_head.*` and `lvr_latent_end_emb` are top-level in every layout.
#: Our class is not in transformers' own conversion registry (it looks classes up by name), so without this mapping
#: the release layout's language model would be silently left at its random initialisation.
CHECKPOINT_KEY_MAPPING = {
    r"^visual\.": "model.visual.",
    r"^model\.(?!language_model\.|visual\.)": "model.language_model.",
}
#: Keys listed in an error message before "... and N more".
_KEYS_SHOWN = 12


class CheckpointError(ValueError):
    """A checkpoint folder whose weights do not match its config.json (missing, unexpected or mis-shaped keys)."""


def _key_list(keys) -> str:
    keys = sorted(keys)
    more = f" ... and {len(keys) - _KEYS_SHOWN} more" if len(keys) > _KEYS_SHOWN else ""
    return ", ".join(keys[:_KEYS_SHOWN]) + more


def check_loading_info(path: str, info: dict) -> None:
    """Raise CheckpointError unless every weight of the model came from the checkpoint and every weight was used.

    The optional LVR modules (`lvr_head`, `lvr_latent_end_emb`) exist in the model only when config.json asks for
    them, so their absence from a checkpoint is an error exactly when the config asks for them.
    """
    problems = []
    if info.get("missing_keys"):
        problems.append(f"missing weights (not in the checkpoint): {_key_list(info['missing_keys'])}")
    if info.get("unexpected_keys"):
        problems.append(f"unexpected weights (in the checkpoint, not in the model its config.json describes): "
                        f"{_key_list(info['unexpected_keys'])}")
    if info.get("mismatched_keys"):
        shown = [f"{key} {tuple(got)} (model {tuple(want)})" for key, got, want in info["mismatched_keys"]]
        problems.append(f"weights with the wrong shape: {_key_list(shown)}")
    if info.get("error_msgs"):
        problems.append("; ".join(str(e) for e in info["error_msgs"]))
    if problems:
        raise CheckpointError(f"checkpoint {path} does not match its config.json: " + "; ".join(problems))


def load_lvr_model(path: str | Path, dtype: torch.dtype | str = torch.float32,
                   attn_implementation: str = "eager") -> LVRForConditionalGeneration:
    """Load an HF checkpoint folder (any layout of CHECKPOINT_KEY_MAPPING) as an LVR model in eval mode, strictly."""
    try:
        model, info = LVRForConditionalGeneration.from_pretrained(
            str(path), dtype=dtype, attn_implementation=attn_implementation, key_mapping=CHECKPOINT_KEY_MAPPING,
            output_loading_info=True, ignore_mismatched_sizes=True)  # mis-shaped keys come back in `info`
    except torch.OutOfMemoryError:
        raise                                          # a resource failure (retryable), not a bad checkpoint
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"cannot load checkpoint {path}: {e}") from e
    check_loading_info(str(path), info)
    model.eval()
    return model


#: Files whose bytes are the weights of a checkpoint folder.
WEIGHT_SUFFIXES = (".safetensors", ".bin")


def weights_digest(path: str | Path) -> dict:
    """sha256 of each weight file of a checkpoint folder and one digest over all of them (name + sha256 per line)."""
    from .bundle import sha256_file

    folder = Path(path)
    files = {p.name: sha256_file(p) for p in sorted(folder.iterdir())
             if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES) and not p.name.startswith("training_args")}
    if not files:
        raise CheckpointError(f"checkpoint {path} has no weight files (*.safetensors / *.bin)")
    lines = "".join(f"{name} {digest}\n" for name, digest in files.items())
    return {"sha256": hashlib.sha256(lines.encode()).hexdigest(), "files": files}
