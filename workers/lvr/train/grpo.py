"""Stage-2 GRPO_latent (LVR-SPEC §5; defaults §7).

Per step:
  1. rollout: G completions of each of the step's prompts, all in one batch (lvr.train.rollout), with `steps` decoding
     in eval mode under a KV cache, recording the latents fed;
  2. rewards by name (accuracy, format, user functions), group-normalised advantages;
  3. learning: `numIterations` (TRL's μ) policy updates on this generated batch, each over micro-batches of at most
     `micro_batch_size` completions of one prompt: policy log-probs teacher-forced with the recorded latents replayed
     at their positions (temperature-scaled), image-aware reference log-probs at the same temperature, clipped
     objective + β·KL, aggregated by loss type (bnpo | grpo | dr_grpo) over the whole batch (the micro-batches' parts
     add up to the whole batch's loss, whatever the split). With μ > 1 the old log-probs of the ratio are those of
     the policy at generation time, so `epsilon` clips; with μ = 1 the ratio is 1 (TRL's shortcut). The learning
     rate schedule counts updates (maxSteps × μ).
Fixed by default (each reproduced by `upstreamCompat`): latent replay shifted by one (§5.4.1), image-blind reference
at temperature 1.0 (§5.4.3), loss mask that drops `<|lvr_start|>` and everything before `<|lvr_end|>` (§5.2, §8.5),
a placeholder equal to EOS ending the completion, single-line reward regexes. Each prompt is rolled out once per
step (upstream rolled each prompt out twice, §5.4.6).
"""

from __future__ import annotations

import copy
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..data.errors import DataError
from ..data.images import open_image, resolve_folder
from ..data.records import parse_json_records, validate_grpo_record
from ..data.sft import SYSTEM_PROMPT
from ..data.text import TextCodec
from ..preprocess import ImageConfig, build_prompt
from . import runtime as R
from .. import storage as store
from .errors import EXIT_OK, EXIT_PREEMPTED
from .losses import aggregate, completion_logps, group_advantages, grpo_token_loss
from .rewards import resolve
from .rollout import PromptInputs, Rollout, SamplingConfig, rollout_groups, upstream_loss_mask
from .session import Session
from .train_config import TrainConfig, grpo_max_steps

class GrpoPolicy(nn.Module):
    """One module for every policy computation, so DDP/FSDP hooks wrap rollouts and log-prob forwards alike."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, op: str, **kw):
        if op == "rollout":
            return rollout_groups(self.model, **kw)
        return completion_logps(self.model, **kw)


def compile_rollout_step(cfg: TrainConfig, env: R.Env) -> bool:
    """Compile the static rollout engine's decoder layer unless the run says otherwise; on by default on CUDA only
    (Inductor's CPU code buys nothing at test sizes and costs seconds of compile)."""
    return cfg.compile_rollout_step if cfg.compile_rollout_step is not None else env.device.type == "cuda"


def load_grpo_records(cfg: TrainConfig):
    try:
        raw = store.read_bytes(cfg.data_uri).decode("utf-8")
    except (FileNotFoundError, IsADirectoryError) as e:
        raise DataError("records file not found", source=cfg.data_uri) from e
    data = parse_json_records(raw, cfg.data_uri)
    folder = resolve_folder("", cfg.images_uri, cfg.data_uri)
    return [validate_grpo_record(r, cfg.data_uri, i, folder) for i, r in enumerate(data)]


class PromptOrder:
    """Shuffled per epoch with the seed, sharded by rank; (epoch, cursor) is the resumable position."""

    def __init__(self, n: int, seed: int, rank: int, world: int):
        self.n, self.seed, self.rank, self.world = n, seed, rank, world
        self.epoch, self.cursor = 0, 0

    def _shard(self) -> list[int]:
        idx = list(range(self.n))
        random.Random(self.seed + self.epoch).shuffle(idx)
        return idx[self.rank::self.world] or idx

    def next(self) -> int:
        shard = self._shard()
        if self.cursor >= len(shard):
            self.epoch, self.cursor = self.epoch + 1, 0
            shard = self._shard()
        self.cursor += 1
        return shard[self.cursor - 1]

    def state(self) -> dict:
        return {"epoch": self.epoch, "cursor": self.cursor}

    def load_state(self, st: dict) -> None:
        self.epoch, self.cursor = st["epoch"], st["cursor"]


def make_prompt(rec, codec: TextCodec, model_dir: Path, image_cfg: ImageConfig, device,
                system_prompt: str = SYSTEM_PROMPT):
    img = open_image(rec.image_folder, rec.images[0], source=rec.source, index=rec.index)
    messages = [{"role": "system", "content": system_prompt},
                {"role": "user", "content": [{"type": "image", "image": img}, {"type": "text", "text": rec.question}]}]
    tpl = model_dir / "chat_template.jinja"
    try:
        p = build_prompt(messages, codec.tok, tpl.read_text() if tpl.is_file() else None, image_cfg)
    except ValueError as e:
        raise DataError(str(e), source=rec.source, index=rec.index, field="image") from e
    ids = torch.tensor([p.input_ids], dtype=torch.long, device=device)
    pv = torch.from_numpy(p.pixel_values[0]).to(device)
    grid = torch.tensor([p.image_grids[0]], dtype=torch.long, device=device)
    return ids, pv, grid


def decode_completions(codec: TextCodec, ro, upstream_compat: bool) -> list[str]:
    """Decoded with special tokens skipped and LVR tokens kept (§5.3). By default the latent-step placeholders,
    which are never fed to the model, are left out of the text; upstream_compat keeps them."""
    out = []
    for g in range(ro.completion_ids.shape[0]):
        keep = ro.completion_mask[g] & (torch.ones_like(ro.latent_mask[g]) if upstream_compat else ~ro.latent_mask[g])
        out.append(codec.decode(ro.completion_ids[g][keep].tolist(), skip_special_tokens=True))
    return out


@dataclass
class ScoredGroup:
    """One prompt's G completions, scored, kept for the `numIterations` updates of a step."""
    prompt_ids: torch.Tensor
    pixel_values: torch.Tensor
    grid: torch.Tensor
    ro: Rollout
    advantages: torch.Tensor          # [G]
    loss_mask: torch.Tensor           # [G, T]
    old_logp: torch.Tensor | None = None   # [G, T] at generation time (numIterations > 1); None: ratio 1
    ref_logp: torch.Tensor | None = None   # [G, T] computed once at generation time (numIterations > 1)


def micro_batches(G: int, mb: int) -> list[slice]:
    """Rows of one group per micro-batch: consecutive runs of at most `mb` completions (the last may be shorter)."""
    return [slice(s, min(s + mb, G)) for s in range(0, G, mb)]


def logp_inputs(group: ScoredGroup, rows: slice, upstream_compat: bool) -> dict:
    ro = group.ro
    return dict(prompt_ids=group.prompt_ids, completion_ids=ro.completion_ids[rows], pixel_values=group.pixel_values,
                grid=group.grid, latent_mask=ro.latent_mask[rows],
                latents=ro.latents(rows, shift=1 if upstream_compat else 0).detach())


def reference_logps(ref, kw: dict, cfg: TrainConfig) -> torch.Tensor:
    """Reference log-probs: image-aware at the rollout temperature (upstream_compat: image-blind at 1.0, §5.4.3)."""
    compat = cfg.upstream_compat
    with torch.no_grad():
        return completion_logps(ref, temperature=1.0 if compat else cfg.temperature, use_images=not compat, **kw)


def learn_on_batch(policy, ref, groups: list[ScoredGroup], cfg: TrainConfig, autocast) -> dict:
    """Accumulate the gradient of one update over `groups` (one backward per micro-batch); returns loss and KL.

    Every micro-batch's loss is normalised by the whole batch's tokens / rows (`aggregate`), so the sum of the
    micro-batch gradients is the gradient of the whole batch's loss for any micro_batch_size.
    """
    compat = cfg.upstream_compat
    batch_tokens = sum(float(g.loss_mask.sum()) for g in groups)
    batch_rows = sum(g.loss_mask.shape[0] for g in groups)
    out = {"loss": 0.0, "kl": 0.0}
    for group in groups:
        for rows in micro_batches(group.loss_mask.shape[0], cfg.micro_batch_size):
            kw = logp_inputs(group, rows, compat)
            with autocast():
                logp = policy("logp", temperature=cfg.temperature, **kw)
                ref_logp = None if group.ref_logp is None else group.ref_logp[rows]
                if ref is not None and ref_logp is None:
                    ref_logp = reference_logps(ref, kw, cfg)
            old = logp.detach() if group.old_logp is None else group.old_logp[rows]
            tok_loss, kl = grpo_token_loss(logp, old, ref_logp, group.advantages[rows], cfg.epsilon, cfg.beta)
            m = group.loss_mask[rows]
            loss = aggregate(tok_loss, m, cfg.loss_type, cfg.max_completion_length, batch_tokens, batch_rows)
            loss.backward()
            out["loss"] += float(loss.detach())
            out["kl"] += float((kl.detach() * m).sum()) / max(batch_tokens, 1.0)
    return out


@torch.no_grad()
def keep_generation_logps(policy, ref, group: ScoredGroup, cfg: TrainConfig, autocast) -> None:
    """Old (policy) and reference log-probs at generation time, for numIterations > 1."""
    olds, refs = [], []
    for rows in micro_batches(group.loss_mask.shape[0], cfg.micro_batch_size):
        kw = logp_inputs(group, rows, cfg.upstream_compat)
        with autocast():
            olds.append(policy("logp", temperature=cfg.temperature, **kw).float())
            if ref is not None:
                refs.append(reference_logps(ref, kw, cfg).float())
    group.old_logp = torch.cat(olds)
    group.ref_logp = torch.cat(refs) if refs else None


def run_grpo(cfg: TrainConfig, env: R.Env, s: Session) -> int:
    # ---- resume point, data, rewards ------------------------------------------------------------------------
    R.seed_everything(cfg.seed)
    model_dir, state = s.resume_point()
    codec = TextCodec.from_dir(model_dir)
    records = load_grpo_records(cfg)
    reward_fns = [resolve(n) for n in cfg.reward_funcs]
    weights = cfg.reward_weights or [1.0] * len(reward_fns)
    max_steps = grpo_max_steps(cfg, len(records), env.world)
    order = PromptOrder(len(records), cfg.seed, env.rank, env.world)
    image_cfg = ImageConfig(min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels)
    sampling = SamplingConfig(cfg.temperature, cfg.top_k, cfg.top_p, cfg.repetition_penalty,
                              cfg.max_completion_length, cfg.lvr_steps, compute_dtype=R.compute_dtype(cfg, env),
                              compile_step=compile_rollout_step(cfg, env))
    compat = cfg.upstream_compat

    # ---- policy, reference, optimizer -----------------------------------------------------------------------
    dtype = R.compute_dtype(cfg, env)
    model = R.load_model(model_dir, cfg, env)
    ref = None
    if cfg.beta != 0:
        # the reference is the stage-2 starting point; on resume it is rebuilt from the spec's model
        ref_dir = model_dir if state is None else R.materialise_model_dir(cfg.model_uri, env)
        ref = model if state is None else R.load_model(ref_dir, cfg, env)
        ref = copy.deepcopy(ref).eval().requires_grad_(False)
        if dtype == torch.bfloat16:
            ref = ref.to(torch.bfloat16)
    if cfg.gradient_checkpointing if cfg.gradient_checkpointing is not None else env.device.type == "cuda":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    policy = R.wrap(GrpoPolicy(model), model, cfg, env, dtype)
    optimizer = R.build_optimizer(model, cfg, env, no_decay_norm_bias=True)
    scheduler = R.cosine_schedule(optimizer, max_steps * cfg.num_iterations, cfg.warmup_ratio)
    gen = torch.Generator(device=env.device).manual_seed(cfg.seed * 7919 + env.rank)
    step = 0
    if state is not None:
        R.load_optimizer_state(policy, optimizer, state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        order.load_state(state["data"])
        R.set_rng_state(state["rng"])
        gen.set_state(state["generator"])
        step = state["step"]
    autocast = R.autocast_factory(cfg, env, dtype)
    G = cfg.num_generations
    s.running(step, max_steps)

    # ---- loop ------------------------------------------------------------------------------------------------
    meter = R.Meter(step, max_steps)
    while step < max_steps:
        logs = {"loss": 0.0, "kl": 0.0, "reward": 0.0, "completionLength": 0.0, "rolloutSeconds": 0.0,
                "learnSeconds": 0.0, "tokens": 0.0}
        per_fn = [0.0] * len(reward_fns)
        groups: list[ScoredGroup] = []
        recs = [records[order.next()] for _ in range(cfg.prompts_per_step)]
        prompts = [PromptInputs(*make_prompt(rec, codec, model_dir, image_cfg, env.device, cfg.system_prompt))
                   for rec in recs]

        # 1. rollout of every prompt at once (eval mode: no dropout, KV cache on even with gradient checkpointing)
        t0 = time.time()
        model.eval()
        with autocast():
            rollouts = policy("rollout", prompts=prompts, G=G, cfg=sampling, generator=gen)
        if env.device.type == "cuda":
            torch.cuda.synchronize()
        logs["rolloutSeconds"] += time.time() - t0

        for rec, prompt, ro in zip(recs, prompts, rollouts):
            # 2. rewards and advantages
            texts = decode_completions(codec, ro, compat)
            solutions = [rec.solution] * G
            ids_list = [ro.completion_ids[g][ro.completion_mask[g]].tolist() for g in range(G)]
            rewards = torch.zeros(G)
            for j, (fn, w) in enumerate(zip(reward_fns, weights)):
                r = torch.tensor(fn(texts, solutions, completion_ids=ids_list, prompts=[rec.question] * G,
                                    upstream_compat=compat), dtype=torch.float32)
                per_fn[j] += float(r.mean()) / cfg.prompts_per_step
                rewards += w * r
            adv = group_advantages(rewards, G, cfg.scale_rewards).to(env.device)
            loss_mask = upstream_loss_mask(ro.completion_ids, ro.completion_mask) if compat else \
                ro.completion_mask & ~ro.latent_mask
            groups.append(ScoredGroup(prompt.ids, prompt.pixel_values, prompt.grid, ro, adv, loss_mask))
            logs["reward"] += float(rewards.mean()) / cfg.prompts_per_step
            logs["completionLength"] += float(ro.completion_mask.sum(1).float().mean()) / cfg.prompts_per_step
            logs["tokens"] += float(ro.completion_mask.sum()) + G * prompt.ids.shape[1]

        # 3. numIterations updates on this batch (old log-probs from generation time when there is more than one)
        t1 = time.time()
        model.train()
        if cfg.num_iterations > 1:
            for group in groups:
                keep_generation_logps(policy, ref, group, cfg, autocast)
        for _ in range(cfg.num_iterations):
            parts = learn_on_batch(policy, ref, groups, cfg, autocast)
            logs["loss"] += parts["loss"] / cfg.num_iterations
            logs["kl"] += parts["kl"] / cfg.num_iterations
            grad_norm, lr = R.optimizer_step(policy, optimizer, scheduler, cfg.max_grad_norm)
        if env.device.type == "cuda":
            torch.cuda.synchronize()
        logs["learnSeconds"] += time.time() - t1
        step += 1

        dt = meter.tick()
        tokens = R.all_reduce_sum(env, logs.pop("tokens"))
        avg = {k: R.all_reduce_sum(env, v) / env.world for k, v in logs.items()}
        s.progress(step, max_steps, {
            "loss": avg["loss"], "lossParts": {"kl": avg["kl"]}, "reward": avg["reward"],
            "rewards": {n: R.all_reduce_sum(env, v) / env.world for n, v in zip(cfg.reward_funcs, per_fn)},
            "completionLength": avg["completionLength"], "rolloutSeconds": avg["rolloutSeconds"],
            "learnSeconds": avg["learnSeconds"], "lr": lr, "gradNorm": grad_norm,
            "tokensPerSec": tokens / max(dt, 1e-9), "stepSeconds": dt, "etaSeconds": meter.eta(step)})
        stop = R.all_reduce_max(env, float(s.stop.requested)) > 0
        if step % cfg.checkpoint_every == 0 or step == max_steps or stop:
            s.save(step, policy, model, optimizer, {"scheduler": scheduler.state_dict(), "data": order.state(),
                                                    "rng": R.rng_state(), "generator": gen.get_state()},
                   reason="sigterm" if stop else "periodic")
        if stop:
            return EXIT_PREEMPTED

    s.finish(step)
    return EXIT_OK
