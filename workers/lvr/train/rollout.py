"""GRPO rollouts with LVR `steps` decoding (LVR-SPEC §4.2, §5.2) that record the latents they feed.

G completions of one prompt decode in lock-step, in eval mode, under a live KV cache (§5.5): each step feeds either
the sampled token's embedding or, in latent mode, the previous post-norm hidden state. Per completion position t we
record whether its input was a latent and which vector it was, so the learning forward replays exactly the rollout's
latents at exactly their positions (paper Eq. 5; fixes the shifted replay of §5.4).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import DynamicCache

from .. import tokens as T
from ..lvr_state import LvrRule, LvrStateMachine
from ..repetition import penalize_seen_logits
from .losses import embed_inputs, visual_features


@dataclass
class SamplingConfig:
    temperature: float = 0.9
    top_k: int = 50
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    max_new_tokens: int = 512
    lvr_steps: int = 8
    eos_ids: tuple[int, ...] = (T.IM_END_ID,)
    #: Token every completion starts with instead of a sampled one (e.g. `<|lvr_start|>`, so that each completion
    #: runs a latent block, as a prompt ending in it would). Its log-prob is still read from the model's logits.
    force_first_token: int | None = None


@dataclass
class Rollout:
    completion_ids: torch.Tensor     # [G, T]
    latent_mask: torch.Tensor        # [G, T] True where the input at that completion position was a latent
    hidden_in: torch.Tensor          # [G, T, H] hidden state of the previous position (what a latent input would be)
    completion_mask: torch.Tensor    # [G, T] up to and including the first real EOS
    eos_found: torch.Tensor          # [G]
    sample_logps: torch.Tensor       # [G, T] log-prob of each sampled token under logits / temperature

    def latents(self, rows: slice | torch.Tensor | None = None, shift: int = 0) -> torch.Tensor:
        """Recorded latent inputs in row-major order of latent_mask (shift=1: upstream's one-position-early replay)."""
        h = self.hidden_in
        if shift:
            h = torch.cat([h[:, :1].expand(-1, shift, -1), h[:, :-shift]], 1) if h.shape[1] > shift else h
        m = self.latent_mask
        if rows is not None:
            h, m = h[rows], m[rows]
        return h[m]


def sample_next(logits: torch.Tensor, cfg: SamplingConfig, history: torch.Tensor | None,
                generator: torch.Generator | None) -> torch.Tensor:
    logits = logits.float()
    if cfg.repetition_penalty != 1.0 and history is not None:
        prev = torch.gather(logits, 1, history)
        prev = penalize_seen_logits(prev, cfg.repetition_penalty, where=torch.where)
        logits = logits.scatter(1, history, prev)
    logits = logits / cfg.temperature
    if cfg.top_k and cfg.top_k > 0:
        kth = torch.topk(logits, min(cfg.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if cfg.top_p < 1.0:
        sorted_l, idx = torch.sort(logits, descending=True)
        cum = sorted_l.softmax(-1).cumsum(-1)
        drop = cum - sorted_l.softmax(-1) > cfg.top_p
        logits = logits.masked_fill(drop.scatter(1, idx, drop), float("-inf"))
    probs = logits.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


@torch.no_grad()
def rollout(model, prompt_ids: torch.Tensor, pixel_values: torch.Tensor, grid: torch.Tensor, G: int,
            cfg: SamplingConfig, generator: torch.Generator | None = None) -> Rollout:
    dev = prompt_ids.device
    ids = prompt_ids.expand(G, -1)
    vis = visual_features(model, pixel_values, grid)
    emb = embed_inputs(model, ids, vis.repeat(G, 1))
    mm = (ids == T.IMAGE_PAD_ID).int()
    pos, delta = model.model.get_rope_index(ids, mm_token_type_ids=mm, image_grid_thw=grid.repeat(G, 1))
    cache = DynamicCache(config=model.config.get_text_config())
    lm = model.model.language_model
    out = lm(inputs_embeds=emb, position_ids=pos, past_key_values=cache, use_cache=True)
    h = out.last_hidden_state[:, -1]
    logits = model.lm_head(h)
    P = ids.shape[1]
    # the prefill's input is no latent-step trigger here: every completion starts in text mode
    lvr_states = [LvrStateMachine(LvrRule("steps", cfg.lvr_steps)) for _ in range(G)]
    mode = torch.zeros(G, dtype=torch.bool, device=dev)
    done = torch.zeros(G, dtype=torch.bool, device=dev)
    eos = torch.tensor(cfg.eos_ids, device=dev)
    toks, lat, hin, valid, lps = [], [], [], [], []
    history = ids
    for t in range(cfg.max_new_tokens):
        if t == 0 and cfg.force_first_token is not None:
            tok = torch.full((G,), cfg.force_first_token, dtype=torch.long, device=dev)
        else:
            tok = sample_next(logits, cfg, history if cfg.repetition_penalty != 1.0 else None, generator)
        tok = torch.where(done, torch.full_like(tok, T.PAD_ID), tok)
        lps.append(torch.gather((logits.float() / cfg.temperature).log_softmax(-1), 1, tok[:, None]).squeeze(1))
        toks.append(tok)
        lat.append(mode & ~done)
        hin.append(h)
        valid.append(~done)
        history = torch.cat([history, tok[:, None]], 1)
        # a real (non-placeholder) EOS ends the completion; nothing stops while in latent mode (§4.1)
        done = done | (~mode & torch.isin(tok, eos))
        if bool(done.all()) or t == cfg.max_new_tokens - 1:
            break
        x = torch.where(mode[:, None], h.to(emb.dtype), model.get_input_embeddings()(tok))
        c = P + t
        p = (torch.full((G, 1), c, device=dev) + delta.to(dev)).unsqueeze(0).expand(3, -1, -1)
        out = lm(inputs_embeds=x[:, None], position_ids=p, past_key_values=cache, use_cache=True)
        h_new = out.last_hidden_state[:, -1]
        mode = torch.tensor([state.update(fed) for state, fed in zip(lvr_states, tok.tolist())], device=dev)
        h = h_new
        logits = model.lm_head(h)
    completion = torch.stack(toks, 1)
    latent_mask = torch.stack(lat, 1)
    completion_mask = torch.stack(valid, 1)
    eos_found = (~latent_mask & torch.isin(completion, eos) & completion_mask).any(1)
    return Rollout(completion, latent_mask, torch.stack(hin, 1), completion_mask, eos_found, torch.stack(lps, 1))


def upstream_loss_mask(completion: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """Upstream `lvr_mask` (§5.2): drop tokens from `<|lvr_start|>` up to just before `<|lvr_end|>` (the rest of the
    completion if it never comes); a placeholder equal to EOS also ends the completion."""
    G, Tn = completion.shape
    keep = torch.ones_like(completion, dtype=torch.bool)
    cm = torch.zeros_like(completion_mask)
    for g in range(G):
        inside = False
        for t in range(Tn):
            tok = int(completion[g, t])
            if tok == T.LVR_START_ID:
                inside = True
            elif tok == T.LVR_END_ID:
                inside = False
            keep[g, t] = not inside
        eos_pos = (completion[g] == T.IM_END_ID).nonzero()
        end = int(eos_pos[0]) + 1 if len(eos_pos) else Tn
        cm[g, :end] = True
    return keep & cm & completion_mask
