"""Stage-1 SFT (LVR-SPEC §3, defaults §7): CE + λ·MSE with teacher-forced ROI embeddings.

Read top to bottom: resume point -> data stream -> model/optimizer -> loop (grad-accumulated packed micro-batches,
clip, AdamW, cosine LR) -> events, checkpoints, SIGTERM -> final export.
"""

from __future__ import annotations

import torch

from ..data.errors import DataError
from ..data.images import resolve_folder
from ..data.packing import PackingOptions, Prefetcher, packed_stream
from ..data.records import is_meta, parse_json_records, parse_meta, validate_sft_record
from ..data.sft import SampleShape, SftDataOptions, build_sft_sample, measure_sft_sample
from ..data.text import TextCodec
from . import runtime as R
from .. import storage as store
from .errors import EXIT_OK, EXIT_PREEMPTED
from ..vision_inputs import VisionGeometry
from .host_plan import plan_batch, tensors_to
from .losses import SftObjective
from .session import Session
from .train_config import TrainConfig


def load_sft_datasets(cfg: TrainConfig):
    """[(records, image_folder)] from a meta JSON or a single records file; every record validated up front."""
    try:
        raw = store.read_bytes(cfg.data_uri).decode("utf-8")
    except (FileNotFoundError, IsADirectoryError) as e:
        raise DataError("records file not found", source=cfg.data_uri) from e
    data = parse_json_records(raw, cfg.data_uri)
    if not isinstance(data, list):
        raise DataError("must be a JSON array or JSON lines", source=cfg.data_uri)
    if is_meta(data):
        out = []
        base = cfg.data_uri.rsplit("/", 1)[0]
        for e in parse_meta(data, cfg.data_uri):
            uri = e.data_path if (store.is_s3(e.data_path) or e.data_path.startswith("/")) else store.join(base, e.data_path)
            try:
                recs = parse_json_records(store.read_bytes(uri).decode("utf-8"), uri)
            except FileNotFoundError as err:
                raise DataError(f"dataset '{e.ds_name}' records file not found", source=uri) from err
            folder = resolve_folder(e.image_folder, cfg.images_uri, uri)
            out.append(([validate_sft_record(r, uri, i, folder) for i, r in enumerate(recs)], folder))
        return out
    folder = resolve_folder("", cfg.images_uri, cfg.data_uri)
    return [([validate_sft_record(r, cfg.data_uri, i, folder) for i, r in enumerate(data)], folder)]


def to_device(batch: dict, device) -> dict:
    return tensors_to(batch, device)


def run_sft(cfg: TrainConfig, env: R.Env, s: Session) -> int:
    # ---- where do we start? --------------------------------------------------------------------------------
    R.seed_everything(cfg.seed)
    model_dir, state = s.resume_point()

    # ---- data ----------------------------------------------------------------------------------------------
    codec = TextCodec.from_dir(model_dir)
    datasets = load_sft_datasets(cfg)
    opts = SftDataOptions(insert_latent_end=cfg.insert_latent_end, keep_text_before_lvr=cfg.keep_text_before_lvr,
                          min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels, system_prompt=cfg.system_prompt)

    cache: dict[tuple[int, int], object] = {}

    def build(d: int, i: int):
        if (d, i) in cache:
            return cache[(d, i)]
        recs, folder = datasets[d]
        sample = build_sft_sample(recs[i], codec, folder, opts, key=(d, i))
        if cfg.cache_samples:
            cache[(d, i)] = sample
        return sample

    shapes: dict[tuple[int, int], SampleShape] = {}    # every rank measures alike (cached or not)

    def measure(d: int, i: int) -> SampleShape | None:
        if (d, i) in shapes:
            return shapes[(d, i)]
        recs, folder = datasets[d]
        try:
            shape = measure_sft_sample(recs[i], codec, folder, opts)
        except DataError:
            return None     # built on every rank instead, which reports the record's error
        if cfg.cache_samples:
            shapes[(d, i)] = shape
        return shape

    stream = packed_stream([len(r) for r, _ in datasets], build, measure, seed=cfg.seed, rank=env.rank,
                           world=env.world, opts=PackingOptions(cfg.max_packed_tokens, cfg.long_seq_threshold,
                                                                cfg.max_instance_per_batch),
                           balance=cfg.balance_ranks if cfg.balance_ranks is not None else env.world > 1)

    # ---- model, optimizer, schedule ------------------------------------------------------------------------
    dtype = R.compute_dtype(cfg, env)
    model = R.load_model(model_dir, cfg, env)
    levers = R.SftLevers.from_config(cfg, env)
    R.enable_checkpointing(model, cfg, env)
    # Regional compile fuses the small elementwise kernels (its gain is measured by bench/gpu/sft_levers.sh).
    if cfg.compile_layers if cfg.compile_layers is not None else env.device.type == "cuda":
        R.compile_regions(model)
    if levers.fused_rope:
        R.fuse_rope()
    model.train()
    objective = R.wrap(SftObjective(model, cfg.lvr_lambda, cfg.lvr_fct, cfg.ce_chunk_rows, cfg.train_vision,
                                    fused_ce=levers.fused_ce, lvr_self_feed=cfg.lvr_self_feed,
                                    lvr_detach_target=cfg.lvr_detach_target, lvr_feed_passes=cfg.lvr_feed_passes,
                                    lvr_center_target=cfg.lvr_center_target), model, cfg, env, dtype)
    optimizer = R.build_optimizer(model, cfg, env, no_decay_norm_bias=False, fused=levers.fused_adamw)
    scheduler = R.cosine_schedule(optimizer, cfg.max_steps, cfg.warmup_ratio)
    step = 0
    if state is not None:
        R.load_optimizer_state(objective, optimizer, state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        stream.load_state(state["data"])
        R.set_rng_state(state["rng"])
        step = state["step"]
    autocast = R.autocast_factory(cfg, env, dtype)
    pin = cfg.pin_memory if cfg.pin_memory is not None else env.device.type == "cuda"
    spec = VisionGeometry.from_config(model.config.vision_config)
    prepare = (lambda b: plan_batch(b, spec)) if levers.host_plan else None
    batches = Prefetcher(stream, cfg.packing_mode, pin=pin, prepare=prepare)   # CPU data work overlaps the GPU step
    s.running(step, cfg.max_steps)

    # ---- loop ----------------------------------------------------------------------------------------------
    meter = R.Meter(step, cfg.max_steps)
    while step < cfg.max_steps:
        sums = {"loss": 0.0, "loss_ce": 0.0, "loss_lvr": 0.0, "tokens": 0.0, "latents": 0.0}
        acc = None   # loss parts summed on the device, read once per optimizer step (no host sync per micro-batch)
        for micro in range(cfg.grad_accum):
            batch = to_device(batches.next(), env.device)
            with R.micro_step(objective, last=micro == cfg.grad_accum - 1), autocast():
                parts = objective(batch)
                (parts["loss"] / cfg.grad_accum).backward()
            part = torch.stack([parts[k].detach().float() for k in ("loss", "loss_ce", "loss_lvr")]) / cfg.grad_accum
            acc = part if acc is None else acc + part
            sums["tokens"] += parts["tokens"]
            sums["latents"] += parts["n_lvr"]
        for k, v in zip(("loss", "loss_ce", "loss_lvr"), acc.tolist()):
            sums[k] = v
        grad_norm, lr = R.optimizer_step(objective, optimizer, scheduler, cfg.max_grad_norm)
        step += 1

        dt = meter.tick()
        tokens = R.all_reduce_sum(env, sums["tokens"])
        losses = {k: R.all_reduce_sum(env, sums[k]) / env.world for k in ("loss", "loss_ce", "loss_lvr")}
        s.progress(step, cfg.max_steps, {"loss": losses["loss"], "lossParts": {"ce": losses["loss_ce"],
                                                                               "lvr": losses["loss_lvr"]},
                                         "lr": lr, "gradNorm": grad_norm, "tokensPerSec": tokens / max(dt, 1e-9),
                                         "stepSeconds": dt, "etaSeconds": meter.eta(step),
                                         "latentTokens": R.all_reduce_sum(env, sums["latents"])})
        stop = R.all_reduce_max(env, float(s.stop.requested)) > 0
        if step % cfg.checkpoint_every == 0 or step == cfg.max_steps or stop:
            s.save(step, objective, model, optimizer, {"scheduler": scheduler.state_dict(),
                                                       "data": batches.state(), "rng": R.rng_state()},
                   reason="sigterm" if stop else "periodic")
        if stop:
            batches.close()
            return EXIT_PREEMPTED

    batches.close()
    s.finish(step)
    return EXIT_OK
