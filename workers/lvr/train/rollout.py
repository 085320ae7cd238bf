"""GRPO rollouts with LVR `steps` decoding (LVR-SPEC §4.2, §5.2) that record the latents they feed.

All G completions of every prompt of a step decode in one batch, in eval mode, under a KV cache (§5.5): each step feeds
either the sampled token's embedding or, in latent mode, the previous post-norm hidden state. Per completion position
t we record whether its input was a latent and which vector it was, so the learning forward replays exactly the
rollout's latents at exactly their positions (paper Eq. 5; fixes the shifted replay of §5.4).

Two engines with one semantics:
- `static` (default): each prompt is prefilled once (the step's prompts batched: one vision-tower call, one
  right-padded text forward through the decode step's weights, both compiled with the step: lvr.train.prefill_step)
  and its cache copied into its G rows of a preallocated cache; then one token per row per step through
  lvr.train.decode_step (a CUDA graph on GPU). Rows of different
  prompts keep their own cache index and RoPE position, rows in a latent block and rows emitting text share each
  step, and finished rows are fed padding until every row is done (checked every `done_check_every` steps, so the
  host never waits on the GPU in between); the outputs are cut where the old loop would have stopped. Per token, the
  host samples (`sample_next`) and one function records it and advances the latent-block state (`record_step`,
  compiled with the step).
- `dynamic`: the previous loop (transformers' forward per step over a DynamicCache, one prompt at a time): the
  baseline of bench/gpu/train_grpo.py and the reference of the engine tests.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from transformers import DynamicCache

from .. import tokens as T
from ..lvr_state import LvrRule, LvrStateMachine, steps_transition
from ..repetition import penalize_seen_logits
from .decode_step import StaticDecoder, static_decoder
from .losses import embed_inputs, visual_features
from .prefill_step import compiled_vision_blocks


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
    #: "static" (batched, preallocated cache, CUDA graph on GPU) or "dynamic" (the previous per-prompt loop)
    engine: str = "static"
    cuda_graphs: bool = True
    #: torch.compile the static engine's decoder layer (one compiled function for every layer)
    compile_step: bool = False
    #: the static engine's attention over its cache: "split_k" (lvr.train.decode_attention) or "sdpa"; None: split_k
    #: where its kernels run (CUDA), else sdpa
    decode_attention: str | None = None
    #: cache slots per split-K program; None: lvr.train.decode_attention.default_split
    decode_split: int | None = None
    #: the static engine's weight projections: "triton" (lvr.train.decode_linear) or "cublas"; None: triton where
    #: its kernels run
    decode_projections: str | None = None
    #: the static engine's matmul dtype; None: autocast's dtype when autocast is on, else the weights' dtype
    compute_dtype: torch.dtype | None = None
    done_check_every: int = 16


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
                generator: torch.Generator | None, compiled: bool = False) -> torch.Tensor:
    """One token per row from softmax(logits / temperature) restricted to the top-k (every logit tied with the k-th
    kept) and the top-p nucleus, after the repetition penalty. Without a nucleus (the rollout default) the draw is
    `pick_top_k`'s, compiled when `compiled` (a few kernels per token instead of ~15)."""
    logits = logits.float()
    if cfg.repetition_penalty != 1.0 and history is not None:
        prev = torch.gather(logits, 1, history)
        prev = penalize_seen_logits(prev, cfg.repetition_penalty, where=torch.where)
        logits = logits.scatter(1, history, prev)
    if cfg.top_p >= 1.0:
        q = torch.empty_like(logits).exponential_(1.0, generator=generator)   # the draw sample_categorical makes
        return pick_top_k(logits, q, cfg.temperature, cfg.top_k or 0, compiled)
    z, top = top_k_filter(logits / cfg.temperature, cfg.top_k or 0)
    sorted_z, idx = torch.sort(z, descending=True)
    cum = sorted_z.softmax(-1).cumsum(-1)
    drop = cum - sorted_z.softmax(-1) > cfg.top_p
    z = z.masked_fill(drop.scatter(1, idx, drop), float("-inf"))
    # unnormalised weights suffice (the nucleus never drops the maximum): one elementwise pass instead of a softmax
    return sample_categorical((z - top).exp(), generator)


def top_k_filter(z: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`z` with every entry below the k-th largest of its row set to -inf (ties with the k-th kept; `top_k` 0: none),
    and each row's maximum [B, 1]."""
    if top_k <= 0:
        return z, z.amax(-1, keepdim=True)
    top = torch.topk(z, min(top_k, z.shape[-1]), dim=-1, sorted=False).values
    return z.masked_fill(z < top.amin(-1, keepdim=True), float("-inf")), top.amax(-1, keepdim=True)


def pick_top_k(logits: torch.Tensor, q: torch.Tensor, temperature: float, top_k: int,
               compiled: bool = False) -> torch.Tensor:
    """`sample_categorical` over softmax(logits / temperature) restricted to the top-k, given its Exp(1) draws `q`:
    the argmax of `draw_ratios` (computed by a compiled function when `compiled`; the argmax stays an ATen
    reduction, which spreads each row over many blocks where a fused one gets one block per row)."""
    return (_compiled_ratios() if compiled else draw_ratios)(logits, q, temperature, top_k).argmax(-1)


def draw_ratios(logits: torch.Tensor, q: torch.Tensor, temperature: float, top_k: int) -> torch.Tensor:
    """w / q per entry, w = exp(z - max z) for z = logits / temperature within the top-k, 0 outside it."""
    z, top = top_k_filter(logits / temperature, top_k)
    return (z - top).exp() / q


@functools.cache
def _compiled_ratios():
    return torch.compile(draw_ratios, fullgraph=True, dynamic=False)


def sample_categorical(weights: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One index per row with probability proportional to `weights` [B, V] (≥ 0, a positive maximum per row):
    argmax(w / q) with q ~ Exp(1), the draw torch.multinomial makes for one sample, without its validity checks
    (each a pass over the logits and, on CPU, a host sync)."""
    q = torch.empty_like(weights).exponential_(1.0, generator=generator)
    return (weights / q).argmax(-1)


def record_step(t: torch.Tensor, tok: torch.Tensor, logits: torch.Tensor, done: torch.Tensor, mode: torch.Tensor,
                remaining: torch.Tensor, eos: torch.Tensor, toks: torch.Tensor, lat: torch.Tensor, valid: torch.Tensor,
                lps: torch.Tensor, h: torch.Tensor, hin: torch.Tensor, next_tok: torch.Tensor, next_mode: torch.Tensor,
                temperature: float, lvr_steps: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The static engine's bookkeeping for the token `tok` sampled at completion position `t` ([1], advanced here):
    finished rows get padding; the token, its log-prob, the position's input hidden state `h` (into `hin`), whether
    that input was a latent, and whether the row was still running are recorded in column t; the decode step's
    inputs (`next_tok`, `next_mode` = this position's mode) are written. Returns (done, mode after the next
    forward, remaining latent steps).
    One function so that the rollout compiles it into a few kernels instead of ~40 small launches per token."""
    tok = torch.where(done, T.PAD_ID, tok)
    toks.index_copy_(1, t, tok[:, None])
    lps.index_copy_(1, t, token_logps(logits, tok, temperature)[:, None])
    hin.index_copy_(1, t, h[:, None])
    lat.index_copy_(1, t, (mode & ~done)[:, None])
    valid.index_copy_(1, t, (~done)[:, None])
    next_tok.copy_(tok)
    next_mode.copy_(mode)
    # a real (non-placeholder) EOS ends the completion; nothing stops while in latent mode (§4.1)
    done = done | (~mode & (tok[:, None] == eos[None, :]).any(-1))
    mode, remaining = steps_transition(mode, remaining, tok == T.LVR_START_ID, lvr_steps, torch.where)
    t.add_(1)
    return done, mode, remaining


@functools.cache
def _compiled_record_step():
    return torch.compile(record_step, fullgraph=True, dynamic=False)


def token_logps(logits: torch.Tensor, tok: torch.Tensor, temperature: float) -> torch.Tensor:
    """log softmax(logits / temperature) at `tok` per row."""
    z = logits.float() / temperature
    return z.gather(1, tok[:, None]).squeeze(1) - z.logsumexp(-1)


@dataclass
class PromptInputs:
    """One prompt of a step: token ids [1, P], its image's patches and grid [1, 3]."""
    ids: torch.Tensor
    pixel_values: torch.Tensor
    grid: torch.Tensor


def rollout(model, prompt_ids: torch.Tensor, pixel_values: torch.Tensor, grid: torch.Tensor, G: int,
            cfg: SamplingConfig, generator: torch.Generator | None = None) -> Rollout:
    """G completions of one prompt."""
    return rollout_groups(model, [PromptInputs(prompt_ids, pixel_values, grid)], G, cfg, generator)[0]


def rollout_groups(model, prompts: list[PromptInputs], G: int, cfg: SamplingConfig,
                   generator: torch.Generator | None = None) -> list[Rollout]:
    """G completions of each prompt, one Rollout per prompt (in order)."""
    if cfg.engine == "dynamic":
        return [rollout_dynamic(model, p.ids, p.pixel_values, p.grid, G, cfg, generator) for p in prompts]
    if cfg.engine != "static":
        raise ValueError(f"unknown rollout engine {cfg.engine!r}; expected static or dynamic")
    return rollout_static(model, prompts, G, cfg, generator)


def _compute_dtype(model, device: torch.device, cfg: SamplingConfig) -> torch.dtype:
    if cfg.compute_dtype is not None:
        return cfg.compute_dtype
    if torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    return next(model.model.language_model.parameters()).dtype


#: padded tokens per batched prefill forward (prompts beyond it go to the next forward)
PREFILL_TOKENS = 16384


@dataclass
class Prefilled:
    """One prompt after its prefill: last hidden state [1, H], logits [1, V], per-layer keys and values
    [1, kv_heads, P, head_dim] (its own P), rope delta [1, 1]."""
    h: torch.Tensor
    logits: torch.Tensor
    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    delta: torch.Tensor


@torch.no_grad()
def prefill_prompts(model, prompts: list[PromptInputs], decoder: StaticDecoder,
                    max_tokens: int = PREFILL_TOKENS) -> list[Prefilled]:
    """Every prompt's prefill, in order, batched: consecutive prompts share one vision-tower call and one
    right-padded text forward through `decoder`'s weights while the padded batch stays within `max_tokens` (pads
    come after each prompt's tokens, so under the causal mask its positions see what its own forward would). A
    compiled decoder also runs the vision blocks compiled (lvr.train.prefill_step)."""
    out: list[Prefilled] = []
    group: list[PromptInputs] = []
    for p in prompts:
        if group and (len(group) + 1) * max(int(q.ids.shape[1]) for q in [*group, p]) > max_tokens:
            out.extend(_prefill_batch(model, group, decoder))
            group = []
        group.append(p)
    return out + _prefill_batch(model, group, decoder) if group else out


def _prefill_batch(model, prompts: list[PromptInputs], decoder: StaticDecoder) -> list[Prefilled]:
    dev = prompts[0].ids.device
    lengths = [int(p.ids.shape[1]) for p in prompts]
    K, P = len(prompts), max(lengths)
    ids = torch.full((K, P), T.PAD_ID, dtype=torch.long, device=dev)
    mask = torch.zeros((K, P), dtype=torch.long, device=dev)
    for k, p in enumerate(prompts):
        ids[k, :lengths[k]] = p.ids[0]
        mask[k, :lengths[k]] = 1
    grid = torch.cat([p.grid for p in prompts])
    with compiled_vision_blocks(model, decoder.compiled):
        vis = visual_features(model, torch.cat([p.pixel_values for p in prompts]), grid)
    emb = embed_inputs(model, ids, vis)
    padded = K > 1 and min(lengths) < P
    pos, delta = model.model.get_rope_index(ids, mm_token_type_ids=(ids == T.IMAGE_PAD_ID).int(), image_grid_thw=grid,
                                            attention_mask=mask if padded else None)
    h, logits, keys, values = decoder.prefill(emb, pos.to(dev), lengths)
    delta = delta.to(dev).reshape(K, 1)
    return [Prefilled(h[k:k + 1], logits[k:k + 1], [x[k:k + 1, :, :n] for x in keys],
                      [x[k:k + 1, :, :n] for x in values], delta[k:k + 1])
            for k, n in enumerate(lengths)]


@torch.no_grad()
def rollout_static(model, prompts: list[PromptInputs], G: int, cfg: SamplingConfig,
                   generator: torch.Generator | None = None) -> list[Rollout]:
    dev = prompts[0].ids.device
    B, n_new = len(prompts) * G, cfg.max_new_tokens
    lengths = [int(p.ids.shape[1]) for p in prompts]
    dec = static_decoder(model, B, max(lengths) + n_new, _compute_dtype(model, dev, cfg), dev, cfg.cuda_graphs,
                         cfg.compile_step, cfg.decode_attention, cfg.decode_split, cfg.decode_projections)
    h0, logits0, idx0, delta0 = [], [], [], []
    for k, pre in enumerate(prefill_prompts(model, prompts, dec)):
        dec.load_prefix(slice(k * G, (k + 1) * G), pre.keys, pre.values)
        h0.append(pre.h.float().expand(G, -1))
        logits0.append(pre.logits.float().expand(G, -1))
        idx0.append(torch.full((G,), lengths[k], dtype=torch.long, device=dev))
        delta0.append(pre.delta.reshape(1).expand(G))
    dec.h.copy_(torch.cat(h0))
    dec.idx.copy_(torch.cat(idx0))
    dec.pos.copy_(dec.idx + torch.cat(delta0))
    logits, h = torch.cat(logits0), dec.h
    history = None
    if cfg.repetition_penalty != 1.0:   # padded with each row's first token (penalising it twice is a no-op)
        P = max(lengths)
        history = torch.cat([torch.cat([p.ids, p.ids[:, :1].expand(1, P - p.ids.shape[1])], 1).expand(G, -1)
                             for p in prompts])

    # the prefill's input is no latent-step trigger here: every completion starts in text mode
    mode = torch.zeros(B, dtype=torch.bool, device=dev)
    remaining = torch.full((B,), cfg.lvr_steps, dtype=torch.long, device=dev)
    done = torch.zeros(B, dtype=torch.bool, device=dev)
    eos = torch.tensor(cfg.eos_ids, device=dev)
    toks = torch.full((B, n_new), T.PAD_ID, dtype=torch.long, device=dev)
    lat = torch.zeros(B, n_new, dtype=torch.bool, device=dev)
    valid = torch.zeros(B, n_new, dtype=torch.bool, device=dev)
    lps = torch.zeros(B, n_new, dtype=torch.float32, device=dev)
    hin = torch.zeros(B, n_new, h.shape[1], dtype=h.dtype, device=dev)
    t_index = torch.zeros(1, dtype=torch.long, device=dev)
    record = _compiled_record_step() if cfg.compile_step else record_step
    for t in range(n_new):
        if t == 0 and cfg.force_first_token is not None:
            tok = torch.full((B,), cfg.force_first_token, dtype=torch.long, device=dev)
        else:
            tok = sample_next(logits, cfg, history, generator, compiled=cfg.compile_step)
        done, next_mode, remaining = record(t_index, tok, logits, done, mode, remaining, eos, toks, lat, valid, lps,
                                            h, hin, dec.tok, dec.mode, cfg.temperature, cfg.lvr_steps)
        if history is not None:
            history = torch.cat([history, dec.tok[:, None]], 1)
        if t == n_new - 1 or (t % cfg.done_check_every == cfg.done_check_every - 1 and bool(done.all())):
            break
        dec.step()   # input: h where mode (latent), else the token's embedding; then h, logits of the new position
        mode, logits = next_mode, dec.logits
    out = []
    for k in range(len(prompts)):
        rows = slice(k * G, (k + 1) * G)
        n = int(valid[rows].any(0).nonzero().max()) + 1     # where the per-prompt loop stopped
        completion, latent_mask, completion_mask = toks[rows, :n], lat[rows, :n], valid[rows, :n]
        eos_found = (~latent_mask & torch.isin(completion, eos) & completion_mask).any(1)
        out.append(Rollout(completion, latent_mask, hin[rows, :n], completion_mask, eos_found, lps[rows, :n]))
    return out


@torch.no_grad()
def rollout_dynamic(model, prompt_ids: torch.Tensor, pixel_values: torch.Tensor, grid: torch.Tensor, G: int,
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
        lps.append(token_logps(logits, tok, cfg.temperature))
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
