"""Reference LVR decoding (LVR-SPEC §4), batch 1, over any backend of `lvr.backends`.

One forward per loop iteration. After each forward the next token is picked (always appended, also while the next
input will be a latent: a "placeholder", LVR-SPEC §4.1 step 4), then the mode is updated from the token that was
this forward's input, then the stop rule is checked.

Upstream defects (LVR-SPEC §8.6) and the choices here:
- `max_new_tokens` ignored while in LVR mode (§4.1 step 6). Default: `max_new_tokens` is a hard cap in every mode.
  `upstream_compat=True`: nothing stops while mode is on (as upstream).
- `end_token` strategy (`_lvr_deocding`) has no step cap (§4.4). Default: at most `steps` latent inputs per block.
  `upstream_compat=True`: no cap (a safety limit raises `NonTerminatingDecode` instead of looping forever).
- Placeholders are sampled from latent logits, counted in the length budget and kept in the repetition-penalty
  history: reproduced in both modes (they change outputs; LVR-SPEC §4.6 says to keep them).
- The mode update after prefill uses the prompt's last token as "this forward's input", as the upstream loop does
  (`input_ids[:, -1]`); a prompt ending in `<|lvr_start|>` therefore starts in latent mode.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from . import tokens as T
from .lvr_state import STRATEGIES, LvrRule, LvrStateMachine
from .mrope import rope_index
from .preprocess import Prompt
from .repetition import penalize_seen_logits


class NonTerminatingDecode(RuntimeError):
    """Raised in upstream_compat mode when the upstream rules would keep decoding past the safety limit."""


@dataclass
class SamplingParams:
    """Generation parameters; defaults = Qwen2.5-VL generation_config (greedy on penalised logits)."""

    max_new_tokens: int = 512
    do_sample: bool = True
    temperature: float = 0.1
    top_k: int = 1
    top_p: float = 0.001
    repetition_penalty: float = 1.05
    eos_ids: tuple[int, ...] = T.EOS_IDS
    seed: int = 0

    @property
    def greedy(self) -> bool:
        return (not self.do_sample) or self.top_k == 1


@dataclass
class LVROptions:
    """LVR decoding options (LVR-SPEC §4.2-4.4)."""

    strategy: str = "steps"
    steps: int = 8
    criterion: str = "mse"
    threshold: float = 0.02
    upstream_compat: bool = False
    safety_limit: int = 4096
    ids: T.SpecialIds = field(default_factory=T.SpecialIds)

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown LVR strategy {self.strategy!r}; expected one of {STRATEGIES}")
        if self.steps < 1:
            raise ValueError("steps must be >= 1")

    def rule(self) -> LvrRule:
        return LvrRule(self.strategy, self.steps, self.criterion, self.threshold, self.upstream_compat,
                       self.ids.lvr_start_id, self.ids.lvr_end_id)


@dataclass
class StepRecord:
    """One forward pass: what went in, what was picked, and a checksum of the output hidden state."""

    index: int
    input_kind: str  # "prefill" | "text" | "latent"
    input_token: int  # token id fed (text), or the placeholder id at this position (latent), or last prompt id
    token: int  # token picked from this forward's logits
    mode_after: bool
    hidden: dict

    def to_json(self) -> dict:
        return {"index": self.index, "input_kind": self.input_kind, "input_token": self.input_token,
                "token": self.token, "mode_after": self.mode_after, "hidden": self.hidden}


@dataclass
class DecodeResult:
    prompt_ids: list[int]
    output_ids: list[int]
    steps: list[StepRecord]
    finish_reason: str  # "stop" | "length"
    rope_delta: int

    @property
    def latent_steps(self) -> int:
        return sum(1 for s in self.steps if s.input_kind == "latent")


def hidden_checksum(h: np.ndarray) -> dict:
    """Float summary of a hidden state [1, H] (compared with a tolerance) plus an exact hash of its bytes."""
    v = np.asarray(h, dtype=np.float32).reshape(-1)
    return {"sum": float(v.sum(dtype=np.float64)), "abs_sum": float(np.abs(v).sum(dtype=np.float64)),
            "l2": float(np.sqrt((v.astype(np.float64) ** 2).sum())), "head": [float(x) for x in v[:4]],
            "sha256": hashlib.sha256(np.ascontiguousarray(h).tobytes()).hexdigest()[:16]}


def apply_repetition_penalty(logits: np.ndarray, history: list[int], penalty: float) -> np.ndarray:
    """HF RepetitionPenaltyLogitsProcessor: for every id in history, logit<0 -> *p, else /p."""
    if penalty == 1.0 or not history:
        return logits
    out = logits.copy()
    ids = np.unique(np.asarray(history, dtype=np.int64))
    ids = ids[ids < out.shape[0]]
    s = out[ids]
    out[ids] = penalize_seen_logits(s, np.float32(penalty)).astype(np.float32)
    return out


def pick_token(logits: np.ndarray, history: list[int], params: SamplingParams, rng: np.random.Generator) -> int:
    """Repetition penalty, then argmax (greedy) or temperature/top-k/top-p sampling."""
    x = apply_repetition_penalty(np.asarray(logits, dtype=np.float32), history, params.repetition_penalty)
    if params.greedy:
        return int(np.argmax(x))
    x = x.astype(np.float64) / max(params.temperature, 1e-6)
    if params.top_k and params.top_k > 0:
        kth = np.sort(x)[-min(params.top_k, x.shape[0])]
        x = np.where(x < kth, -np.inf, x)
    p = np.exp(x - x.max())
    p /= p.sum()
    if params.top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        cum = np.cumsum(p[order])
        keep = cum - p[order] < params.top_p
        keep[0] = True
        mask = np.zeros_like(p, dtype=bool)
        mask[order[keep]] = True
        p = np.where(mask, p, 0.0)
        p /= p.sum()
    return int(rng.choice(p.shape[0], p=p))


def prefill_embeds(backend, prompt: Prompt, image_pad_id: int = T.IMAGE_PAD_ID) -> np.ndarray:
    """Token embeddings with each image's merged features scattered into its `<|image_pad|>` run (prompt order)."""
    emb = backend.embed(prompt.input_ids).copy()
    ids = np.asarray(prompt.input_ids)
    if len(prompt.rgb) != len(prompt.pixel_values):
        raise ValueError("the prompt's images need their RGB arrays (lvr.preprocess.build_prompt keeps them)")
    if prompt.rgb:
        feats = np.concatenate([backend.vision(rgb, pv) for rgb, pv in zip(prompt.rgb, prompt.pixel_values)])
        slots = np.nonzero(ids == image_pad_id)[0]
        if len(slots) != feats.shape[0]:
            raise ValueError(f"{len(slots)} image pad tokens but {feats.shape[0]} visual tokens")
        emb[0, slots] = feats.astype(emb.dtype)
    return emb


def generate(backend, prompt: Prompt, params: SamplingParams | None = None, lvr: LVROptions | None = None,
             spatial_merge_size: int = 2) -> DecodeResult:
    """Decode one prompt with LVR latent steps (LVR-SPEC §4)."""
    params = params or SamplingParams()
    lvr = lvr or LVROptions()
    if lvr.strategy == "latent" and backend.latent_end_emb is None:
        raise ValueError("strategy 'latent' needs a model with latent_end_token=true (lvr_latent_end_emb)")
    rng = np.random.default_rng(params.seed)
    backend.reset()

    prompt_ids = list(prompt.input_ids)
    pos, delta = rope_index(prompt_ids, prompt.image_grids, spatial_merge_size=spatial_merge_size)
    x = prefill_embeds(backend, prompt)
    mask = np.ones((1, len(prompt_ids)), dtype=np.int64)
    logits, h = backend.forward(x, mask, pos[:, None, :])

    history = list(prompt_ids)
    out: list[int] = []
    records: list[StepRecord] = []
    lvr_state = LvrStateMachine(lvr.rule(), backend.latent_end_emb)
    h_prev = None  # output hidden state of the previous forward
    tok_in = prompt_ids[-1]
    kind = "prefill"
    finish = "length"
    while True:
        mode_at_input = kind == "latent"
        if mode_at_input and backend.has_head:  # LVR-SPEC §4.5: head only when mode was on at the input
            h, logits = backend.head(h)
        tok = pick_token(logits, history, params, rng)
        out.append(tok)
        history.append(tok)

        mode = lvr_state.after_forward(int(tok_in), tok, h_prev)  # LVR-SPEC §4.2-4.4
        records.append(StepRecord(len(records), kind, int(tok_in), tok, mode, hidden_checksum(h)))

        # stop rules (LVR-SPEC §4.1 step 6): nothing stops while mode is on (upstream), except our length cap
        if not mode and tok in params.eos_ids:
            finish = "stop"
            break
        if len(out) >= params.max_new_tokens and (not mode or not lvr.upstream_compat):
            finish = "length"
            break
        if len(out) >= lvr.safety_limit:
            raise NonTerminatingDecode(f"decoding did not stop within {lvr.safety_limit} tokens (upstream rules)")

        # next input: the fed-back latent (unchanged, model dtype) or the picked token's embedding
        h_prev = h
        if mode:
            x = np.asarray(h).reshape(1, 1, -1)
            kind = "latent"
        else:
            x = backend.embed([tok])
            kind = "text"
        tok_in = tok
        c = len(prompt_ids) + len(out) - 1
        mask = np.ones((1, c + 1), dtype=np.int64)
        position = np.full((3, 1, 1), c + delta, dtype=np.int64)
        logits, h = backend.forward(x, mask, position)
    return DecodeResult(prompt_ids, out, records, finish, delta)
