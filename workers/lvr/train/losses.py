"""Stage-1 forward and loss (LVR-SPEC §3) and the stage-2 GRPO objective (§5.3-§5.4), as plain functions.

Stage 1, per micro-batch:
  1. E = embed(input_ids); V = vision(pixel_values) (frozen, no grad) scattered into the `<|image_pad|>` slots.
  2. Teacher forcing: the input at the j-th `<|lvr|>` slot (row-major) is V[lvr_target[j]], the ground-truth visual
     token of the ROI (offsets per batch row).
  3. One decoder pass with M-RoPE positions; h = post-final-norm hidden states.
  4. CE over shifted labels (prompt, padding, `<|lvr|>` ignored), fp32 logits, mean over targets (the LM head
     runs on target rows only, chunked above ce_chunk_rows targets).
  5. L_lvr = MSE(h[p_j - 1], V[lvr_target[j]]) averaged per element (÷ L·H, as the code; §8.8).
  6. L = CE + λ·L_lvr (CE only if λ <= 0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import tokens as T

IGNORE = -100


# --------------------------------------------------------------------------------------------------------------
# model pieces
# --------------------------------------------------------------------------------------------------------------
def visual_features(model, pixel_values: torch.Tensor, grid: torch.Tensor, train_vision: bool = False) -> torch.Tensor:
    """Merger output, one row per merged visual token, concatenated over images [N_vis, H]."""
    inner = model.model
    pv = pixel_values.to(device=grid.device if pixel_values.device != grid.device else pixel_values.device)
    ctx = torch.enable_grad() if train_vision else torch.no_grad()
    with ctx:
        out = inner.get_image_features(pv, grid, return_dict=True).pooler_output
    return torch.cat(list(out), 0)


def rope_positions(model, input_ids: torch.Tensor, grid: torch.Tensor, attention_mask=None,
                   seq_lens: list[int] | None = None, images_per_seq: list[int] | None = None) -> torch.Tensor:
    """M-RoPE position ids (Appendix A). Padded rows: [3, B, L]. A flat packed row: [4, 1, L] with per-instance text
    positions in row 0, which makes transformers build block-diagonal (per-instance) causal attention."""
    inner = model.model
    mm = (input_ids == T.IMAGE_PAD_ID).int()
    if seq_lens is None:
        pos, _ = inner.get_rope_index(input_ids, mm_token_type_ids=mm, image_grid_thw=grid,
                                      attention_mask=attention_mask)
        return pos
    parts, text, start, g0 = [], [], 0, 0
    for n, k in zip(seq_lens, images_per_seq):
        ids = input_ids[:, start:start + n]
        p, _ = inner.get_rope_index(ids, mm_token_type_ids=mm[:, start:start + n], image_grid_thw=grid[g0:g0 + k])
        parts.append(p)
        text.append(torch.arange(n, device=input_ids.device))
        start, g0 = start + n, g0 + k
    pos = torch.cat(parts, dim=2)
    return torch.cat([torch.cat(text)[None, None, :], pos], dim=0)


def embed_inputs(model, input_ids: torch.Tensor, vis: torch.Tensor, latent_mask: torch.Tensor | None = None,
                 latents: torch.Tensor | None = None) -> torch.Tensor:
    """Token embeddings with image features in the image-pad slots and `latents` (row-major) where latent_mask."""
    emb = model.get_input_embeddings()(input_ids)
    img = (input_ids == T.IMAGE_PAD_ID).unsqueeze(-1)
    emb = emb.masked_scatter(img, vis.to(emb.dtype))
    if latent_mask is not None and latents is not None and latents.numel():
        emb = emb.masked_scatter(latent_mask.unsqueeze(-1), latents.to(emb.dtype))
    return emb


def decoder(model, embeds, positions, attention_mask=None) -> torch.Tensor:
    out = model.model.language_model(inputs_embeds=embeds, position_ids=positions, attention_mask=attention_mask,
                                     use_cache=False)
    return out.last_hidden_state


def lvr_loss_fn(pred: torch.Tensor, target: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    pred, target = pred.float(), target.float()
    if kind == "mse":
        return F.mse_loss(pred, target)
    if kind == "mae":
        return F.l1_loss(pred, target)
    if kind == "cosine":
        return (1 - F.cosine_similarity(pred, target, dim=-1)).mean()
    raise ValueError(f"loss_lvr_fct must be mse, mae or cosine, got {kind!r}")


def _nll_sum(head, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(head(h).float(), y, reduction="sum")


def linear_cross_entropy(head, h: torch.Tensor, y: torch.Tensor, chunk_rows: int = 4096) -> torch.Tensor:
    """mean CE of head(h) (fp32 logits) against y. Only CE targets reach the head (prompt, image and latent
    positions are dropped first), so the logits are [n_targets, V]; above `chunk_rows` targets the rows go through
    the head in chunks under activation checkpointing, so at most one chunk of [chunk, V] fp32 logits is alive in
    forward or backward (151936-wide vocabulary: 0.6 MB per row). Same value and gradients as the one-shot form."""
    n = h.shape[0]
    if n == 0:
        return head(h).float().sum() * 0.0
    if chunk_rows <= 0 or n <= chunk_rows:
        return F.cross_entropy(head(h).float(), y)
    from torch.utils.checkpoint import checkpoint

    total = sum(checkpoint(_nll_sum, head, h[i:i + chunk_rows], y[i:i + chunk_rows], use_reentrant=False)
                for i in range(0, n, chunk_rows))
    return total / n


class _FusedLinearCrossEntropy(torch.autograd.Function):
    """mean CE of h @ weight.T with its gradients computed chunk by chunk in the forward (Liger-style): per chunk
    the fp32 logits, their log-sum-exp, the loss and softmax - onehot are formed and immediately turned into
    d h (chunk @ weight) and d weight (accumulated in fp32), so neither forward nor backward keeps [n, V] logits and
    the backward does no second LM-head matmul (the checkpointed form recomputes it)."""

    @staticmethod
    def forward(ctx, h, weight, y, chunk_rows: int):
        n = h.shape[0]
        grad_h = torch.empty_like(h)
        one_chunk = n <= chunk_rows   # then d weight is one matmul in the weight's dtype, as autograd's would be
        grad_w = None if one_chunk else torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        for i in range(0, n, chunk_rows):
            hc, yc = h[i:i + chunk_rows], y[i:i + chunk_rows]
            logits = (hc @ weight.t()).float()
            lse = torch.logsumexp(logits, -1)
            total = total + (lse - logits.gather(1, yc[:, None]).squeeze(1)).sum()
            d = torch.exp(logits - lse[:, None])
            d[torch.arange(hc.shape[0], device=d.device), yc] -= 1.0
            d = (d / n).to(h.dtype)
            grad_h[i:i + chunk_rows] = d @ weight
            if one_chunk:
                grad_w = d.t() @ hc
            else:
                grad_w += (d.t() @ hc).float()
        ctx.save_for_backward(grad_h, grad_w.to(weight.dtype))
        return total / n

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_w = ctx.saved_tensors
        return grad_h * grad_out.to(grad_h.dtype), grad_w * grad_out.to(grad_w.dtype), None, None


def fused_linear_cross_entropy(weight: torch.Tensor, h: torch.Tensor, y: torch.Tensor,
                               chunk_rows: int = 4096) -> torch.Tensor:
    """Same value and gradients as F.cross_entropy((h @ weight.T).float(), y) (lever `fused_ce`), never holding
    more than one [chunk_rows, V] block of logits; without autograd it only computes the loss."""
    n = h.shape[0]
    chunk = chunk_rows if chunk_rows > 0 else max(n, 1)
    if n == 0:
        return (h @ weight.t()).float().sum() * 0.0
    if not (torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad)):
        total = sum(F.cross_entropy((h[i:i + chunk] @ weight.t()).float(), y[i:i + chunk], reduction="sum")
                    for i in range(0, n, chunk))
        return total / n
    return _FusedLinearCrossEntropy.apply(h, weight, y, chunk)


def sft_loss(model, batch: dict, lvr_lambda: float = 0.1, lvr_fct: str = "mse", ce_chunk_rows: int = 4096,
             train_vision: bool = False, fused_ce: bool = False, lvr_self_feed: bool = False,
             lvr_detach_target: bool = False, lvr_feed_passes: int = 1, lvr_center_target: bool = False) -> dict:
    """Stage-1 loss parts for one collated micro-batch (see the module docstring). `train_vision`: gradients reach
    the vision tower through the image and teacher-forced latent inputs, and through the reconstruction target.
    A batch with a host plan (lvr.train.host_plan) takes the sync-free path (`planned_sft_parts`); `fused_ce`: the
    CE through fused_linear_cross_entropy instead of the checkpointed chunks. `lvr_self_feed`: the latent loss is
    taken from the teacher-forced pass as always, the CE from a second pass whose latent slots hold the model's own
    predictions of the first (detached; through the LVR head where there is one), as decoding feeds them: the answer
    is learned from the latents the model will have at inference, not from the ground-truth region tokens.
    `lvr_feed_passes` (with self-feed): passes that build the fed latents; each after the first re-predicts every
    slot from the previous pass's latents without gradients, so slot j holds what decoding feeds once the passes
    reach j + 1 (one pass per slot of the longest block: exactly decoding's latents; one pass: slot 0 only).
    `lvr_detach_target`: the region tokens are a fixed target of the latent loss (stop-gradient), so with
    `train_vision` only the CE shapes the vision tower and the latent loss cannot shrink its own target.
    `lvr_center_target`: the target minus the batch's mean visual token, the direction every token shares (a
    cosine to uncentred tokens is met by predicting that direction alone)."""
    parts = planned_sft_parts if batch.get("plan") is not None else _sft_parts
    head = getattr(model, "lvr_head", None)
    latent = head if head is not None else (lambda x: x)   # what a slot is fed from a prediction
    h, hs, y, pred, targets, counts, vis = parts(model, batch, train_vision)
    if lvr_self_feed and counts["n_lvr"]:
        fed = latent(pred).detach()
        with torch.no_grad():
            for _ in range(lvr_feed_passes - 1):
                fed = latent(parts(model, batch, train_vision, latents=fed, vis=vis.detach())[3])
        _, hs, y, _, _, _, _ = parts(model, batch, train_vision, latents=fed, vis=vis)
    if fused_ce:
        ce = fused_linear_cross_entropy(model.lm_head.weight, hs, y, ce_chunk_rows)
    else:
        ce = linear_cross_entropy(model.lm_head, hs, y, ce_chunk_rows)

    if counts["n_lvr"]:
        pred = latent(pred)
        # Not detached by default, as upstream (which detaches nothing; its vision tower is frozen). With train_vision
        # the term pulls the region's visual tokens and the hidden states towards each other: detached, CE alone grows
        # the visual tokens' scale until h (post-norm, also feeding the tied LM head) cannot follow, the MSE dominates
        # the loss, and decoding feeds back hidden states far smaller than the tokens training fed (measured on the
        # demo model: loss_lvr 99 -> 1000 in 150 steps while CE stalled at 1.3; plain SFT reached 0.1)
        if lvr_center_target:
            targets = targets - vis.mean(0)
        l_lvr = lvr_loss_fn(pred, targets.detach() if lvr_detach_target else targets, lvr_fct)
    else:
        l_lvr = h.sum() * 0.0
    total = ce + lvr_lambda * l_lvr if lvr_lambda > 0 else ce
    return {"loss": total, "loss_ce": ce.detach(), "loss_lvr": l_lvr.detach(), **counts}


def _sft_parts(model, batch: dict, train_vision: bool, latents: torch.Tensor | None = None,
               vis: torch.Tensor | None = None):
    """Hidden states, CE rows and targets, latent predictions and targets, and the visual tokens, derived on the
    device (host syncs). `latents`: what the `<|lvr|>` slots take (row-major), instead of the ground-truth region
    tokens; `vis`: the visual tokens of an earlier pass over the same batch (the vision tower is not run again)."""
    ids = batch["input_ids"]
    grid = batch["image_grid_thw"]
    if vis is None:
        vis = visual_features(model, batch["pixel_values"].to(ids.device), grid, train_vision)
    lvr_mask = ids == T.LVR_ID
    targets = vis[batch["lvr_target"]]
    emb = embed_inputs(model, ids, vis, lvr_mask, targets if latents is None else latents)
    pos = rope_positions(model, ids, grid, batch.get("attention_mask"), batch.get("seq_lens"),
                         batch.get("images_per_seq"))
    h = decoder(model, emb, pos, batch.get("attention_mask"))

    # CE on next-token targets; `<|lvr|>` labels are masked again here (§2.6), whatever the data says
    labels = batch["labels"][:, 1:]
    valid = (labels != IGNORE) & (labels != T.LVR_ID)
    hs = h[:, :-1][valid]
    # reconstruction: prediction for latent j is the hidden state one position earlier
    rows, cols = lvr_mask.nonzero(as_tuple=True)
    counts = {"n_ce": int(hs.shape[0]), "n_lvr": int(rows.numel()),
              "tokens": int(batch["attention_mask"].sum()) if batch.get("attention_mask") is not None else ids.numel()}
    return h, hs, labels[valid], h[rows, cols - 1], targets, counts, vis


def planned_sft_parts(model, batch: dict, train_vision: bool, latents: torch.Tensor | None = None,
                      vis: torch.Tensor | None = None):
    """As _sft_parts from the host plan: every index arrives as a tensor, every length as an int, so nothing here
    waits for the GPU (the vision tower takes its precomputed window/rotary indices, the decoder its varlen
    boundaries, and no causal-mask builder runs for the varlen backend)."""
    from .attention import NAME as VARLEN

    plan = batch["plan"]
    ids = batch["input_ids"]
    inner = model.model
    if vis is None:
        with torch.enable_grad() if train_vision else torch.no_grad():
            pv = batch["pixel_values"].to(ids.device).type(inner.visual.dtype)
            vis = inner.visual(pv, grid_thw=batch["image_grid_thw"], **plan["vision"]).pooler_output
    targets = vis[batch["lvr_target"]]
    emb = model.get_input_embeddings()(ids)
    B, L, H = emb.shape
    flat = emb.reshape(B * L, H).index_copy(0, plan["image_slots"], vis.to(emb.dtype))
    if plan["n_lvr"]:
        flat = flat.index_copy(0, plan["lvr_slots"], (targets if latents is None else latents).to(emb.dtype))
    text = inner.language_model
    kw = {}
    if text.config._attn_implementation == VARLEN:
        cu, mx = plan["cu_seqlens"], plan["max_seqlen"]
        kw = {"attention_mask": {t: None for t in set(text.config.layer_types)}, "cu_seq_lens_q": cu,
              "cu_seq_lens_k": cu, "max_length_q": mx, "max_length_k": mx}
    h = text(inputs_embeds=flat.view(B, L, H), position_ids=plan["positions"], use_cache=False, **kw).last_hidden_state
    hf = h.reshape(B * L, H)
    hs = hf.index_select(0, plan["ce_rows"])
    pred = hf.index_select(0, plan["lvr_slots"] - 1)
    counts = {"n_ce": plan["n_ce"], "n_lvr": plan["n_lvr"], "tokens": plan["tokens"]}
    return h, hs, plan["ce_labels"], pred, targets, counts, vis


class SftObjective(nn.Module):
    """Wraps the model so DDP/FSDP see one forward that returns the loss parts."""

    def __init__(self, model, lvr_lambda: float = 0.1, lvr_fct: str = "mse", ce_chunk_rows: int = 4096,
                 train_vision: bool = False, fused_ce: bool = False, lvr_self_feed: bool = False,
                 lvr_detach_target: bool = False, lvr_feed_passes: int = 1, lvr_center_target: bool = False):
        super().__init__()
        self.model = model
        self.options = {"lvr_lambda": lvr_lambda, "lvr_fct": lvr_fct, "ce_chunk_rows": ce_chunk_rows,
                        "train_vision": train_vision, "fused_ce": fused_ce, "lvr_self_feed": lvr_self_feed,
                        "lvr_detach_target": lvr_detach_target, "lvr_feed_passes": lvr_feed_passes,
                        "lvr_center_target": lvr_center_target}

    def forward(self, batch: dict) -> dict:
        return sft_loss(self.model, batch, **self.options)


# --------------------------------------------------------------------------------------------------------------
# GRPO (stage 2)
# --------------------------------------------------------------------------------------------------------------
def completion_logps(model, prompt_ids: torch.Tensor, completion_ids: torch.Tensor, pixel_values, grid,
                     latent_mask: torch.Tensor, latents: torch.Tensor, temperature: float,
                     use_images: bool = True) -> torch.Tensor:
    """Per-token log-probabilities of `completion_ids` [B, T] after the same prompt (B rows share it).

    Teacher-forced over prompt + completion; completion positions with latent_mask take the recorded rollout latents
    (Eq. 5 of the paper), logits are divided by `temperature`. use_images=False reproduces the upstream image-blind
    reference (§5.4 step 3).
    """
    B, Tc = completion_ids.shape
    ids = torch.cat([prompt_ids.expand(B, -1), completion_ids], 1)
    P = prompt_ids.shape[1]
    full_mask = torch.zeros_like(ids, dtype=torch.bool)
    full_mask[:, P:] = latent_mask
    if use_images:
        # image slots and M-RoPE image positions come from the prompt only: a completion token that happens to be
        # `<|image_pad|>` or `<|vision_start|>` is text at position c + rope_delta, as in the rollout
        vis = visual_features(model, pixel_values, grid)
        prompt_emb = embed_inputs(model, prompt_ids, vis)
        comp_emb = model.get_input_embeddings()(completion_ids)
        if latents.numel():
            comp_emb = comp_emb.masked_scatter(latent_mask.unsqueeze(-1), latents.to(comp_emb.dtype))
        emb = torch.cat([prompt_emb.expand(B, -1, -1), comp_emb], 1)
        prompt_pos = rope_positions(model, prompt_ids, grid)                       # [3, 1, P]
        delta = prompt_pos.amax() + 1 - P
        comp_pos = (torch.arange(P, P + Tc, device=ids.device) + delta).view(1, 1, -1).expand(3, 1, -1)
        pos = torch.cat([prompt_pos, comp_pos], 2).expand(-1, B, -1)
    else:
        emb = model.get_input_embeddings()(ids)
        emb = emb.masked_scatter(full_mask.unsqueeze(-1), latents.to(emb.dtype)) if latents.numel() else emb
        pos = torch.arange(ids.shape[1], device=ids.device).view(1, 1, -1).expand(3, B, -1)
    h = decoder(model, emb, pos)
    logits = model.lm_head(h[:, P - 1:-1]).float() / temperature
    return torch.gather(logits.log_softmax(-1), 2, completion_ids.unsqueeze(-1)).squeeze(-1)


def group_advantages(rewards: torch.Tensor, group_size: int, scale: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """A_i = (r_i - mean_G r) / (std_G r + 1e-4) over consecutive groups (unbiased std, §5.3)."""
    r = rewards.view(-1, group_size)
    adv = r - r.mean(1, keepdim=True)
    if scale:
        adv = adv / (r.std(1, keepdim=True) + eps)
    return adv.reshape(-1)


def grpo_token_loss(logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor | None,
                    advantages: torch.Tensor, epsilon: float = 0.2, beta: float = 0.04) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token L_t = -min(ρA, clip(ρ, 1-ε, 1+ε)A) + β·KL_t, KL_t = exp(ref-logp) - (ref-logp) - 1 (k3)."""
    ratio = torch.exp(logp - old_logp)
    a = advantages.unsqueeze(1)
    loss = -torch.min(ratio * a, torch.clamp(ratio, 1 - epsilon, 1 + epsilon) * a)
    kl = torch.zeros_like(logp)
    if ref_logp is not None and beta != 0:
        d = ref_logp - logp
        kl = torch.exp(d) - d - 1
        loss = loss + beta * kl
    return loss, kl


def aggregate(loss: torch.Tensor, mask: torch.Tensor, loss_type: str = "bnpo", max_len: int | None = None,
              batch_tokens: torch.Tensor | float | None = None, batch_rows: int | None = None) -> torch.Tensor:
    """bnpo: Σ(L·m)/max(Σm, 1); grpo: mean over sequences of per-sequence means; dr_grpo: Σ(L·m)/(B·max_len).

    For a micro-batch of a larger batch pass the whole batch's token count `batch_tokens` (Σm) and row count
    `batch_rows`: the micro-batches' results then add up to the whole batch's value, whatever the split.
    """
    m = mask.to(loss.dtype)
    rows = loss.shape[0] if batch_rows is None else batch_rows
    if loss_type == "bnpo":
        tokens = m.sum() if batch_tokens is None else torch.as_tensor(batch_tokens, dtype=loss.dtype,
                                                                          device=loss.device)
        return (loss * m).sum() / tokens.clamp(min=1.0)
    if loss_type == "grpo":
        return ((loss * m).sum(1) / m.sum(1).clamp(min=1.0)).sum() / rows
    if loss_type == "dr_grpo":
        return (loss * m).sum() / (rows * (max_len or loss.shape[1]))
    raise ValueError(f"loss_type must be bnpo, grpo or dr_grpo, got {loss_type!r}")
