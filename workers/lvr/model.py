"""The LVR model on transformers' Qwen2.5-VL (LVR-SPEC §1).

`LVRForConditionalGeneration` is `Qwen2_5_VLForConditionalGeneration` plus the LVR config fields (§1.3) and the
optional ablation modules (§1.4), built only when config.json asks for them. An upstream LVR checkpoint folder
(`QwenWithLVR`, saved with transformers 4.54) loads unchanged with `load_lvr_model(path)`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
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


def load_lvr_model(path: str, dtype: torch.dtype | str = torch.float32) -> LVRForConditionalGeneration:
    """Load an HF (upstream LVR or Qwen2.5-VL) checkpoint folder as an LVR model in eval mode."""
    model = LVRForConditionalGeneration.from_pretrained(path, dtype=dtype, attn_implementation="eager")
    model.eval()
    return model
