"""Packing (LVR-SPEC §2.7): the InternVL-style greedy buffer, a sampled multi-dataset stream (per rank, or dealt
token-balanced across ranks), and the collator.

The buffer groups samples (<= max_instance_per_batch, <= max_packed_tokens) into one micro-batch per step. The
collator then either splits the group back into right-padded rows, exactly as upstream does (`mode="pad"`), or
concatenates it into one row with per-instance positions and block-diagonal attention (`mode="flat"`, no padding
FLOPs). Both give the same losses: instances never attend to each other and the means run over the same targets.
"""

from __future__ import annotations

import random
import warnings
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from .. import tokens as T
from .sft import IGNORE, Sample, SampleShape


@dataclass(frozen=True)
class PackingOptions:
    max_packed_tokens: int = 16384
    long_seq_threshold: int = 4096
    max_instance_per_batch: int = 4
    max_buffer_size: int = 100
    allow_overflow: bool = True


def truncated_length(shape: SampleShape, max_tokens: int) -> int | None:
    """Tokens a sample keeps when cut to max_tokens; None (dropped) if the cut falls inside the image (§2.7)."""
    if shape.length <= max_tokens:
        return shape.length
    return None if shape.last_vision >= max_tokens else max_tokens


def truncate_long(sample: Sample, max_tokens: int) -> Sample | None:
    """Cut a sample to max_tokens; None (dropped) if the cut falls inside the image (§2.7)."""
    if len(sample) <= max_tokens:
        return sample
    if truncated_length(SampleShape.of(sample.input_ids), max_tokens) is None:
        return None
    kept = sample.input_ids[:max_tokens]
    n_lvr = sum(1 for t in kept if t == T.LVR_ID)
    return Sample(kept, sample.labels[:max_tokens], sample.pixel_values, sample.image_grid_thw,
                  sample.lvr_index[:n_lvr], sample.key, sample.meta)


class PackedBuffer:
    """Greedy buffer: `add(sample)` returns the groups that became ready (each a list of samples)."""

    def __init__(self, opts: PackingOptions = PackingOptions()):
        self.opts = opts
        self.buffers: list[list[Sample]] = []

    @staticmethod
    def tokens(buf: list[Sample]) -> int:
        return sum(len(s) for s in buf)

    def add(self, sample: Sample) -> list[list[Sample]]:
        o = self.opts
        if len(sample) >= o.long_seq_threshold:
            cut = truncate_long(sample, o.max_packed_tokens)
            return [[cut]] if cut is not None else []
        overflow_ok = o.allow_overflow and len(self.buffers) >= o.max_buffer_size // 2
        target = None
        for buf in self.buffers:
            if len(buf) + 1 <= o.max_instance_per_batch and (
                    self.tokens(buf) + len(sample) <= o.max_packed_tokens or overflow_ok):
                target = buf
                break
        if target is None:
            target = []
            self.buffers.append(target)
        target.append(sample)
        ready: list[list[Sample]] = []
        for buf in list(self.buffers):
            if self.tokens(buf) > o.max_packed_tokens and len(buf) > 1:
                # split from the right: emit the left part, keep the rest buffered
                rest = []
                while len(buf) > 1 and self.tokens(buf) > o.max_packed_tokens:
                    rest.insert(0, buf.pop())
                self.buffers.remove(buf)
                ready.append(buf)
                if rest:
                    self.buffers.append(rest)
            elif len(buf) >= o.max_instance_per_batch:
                self.buffers.remove(buf)
                ready.append(buf)
        while len(self.buffers) > o.max_buffer_size:
            ready.append(self.buffers.pop(0))
        return ready

    def keys(self) -> list[list[tuple[int, int]]]:
        return [[s.key for s in buf] for buf in self.buffers]


class RecordSampler:
    """Endless draws of (dataset, record) keys (replacement=True, §2.1): each dataset's record list is shuffled once
    with `seed` and sharded by global rank; a dataset is drawn with probability proportional to its length, and
    restarts when exhausted. Two samplers of the same arguments draw the same keys."""

    def __init__(self, sizes: list[int], seed: int = 42, rank: int = 0, world: int = 1):
        self.order = []
        for n in sizes:
            idx = list(range(n))
            random.Random(seed).shuffle(idx)
            shard = idx[rank::world] or idx  # a dataset smaller than the world is repeated, never empty
            self.order.append(shard)
        self.weights = [len(o) for o in self.order]
        self.rng = random.Random(seed * 1000003 + rank)
        self.cursors = [0] * len(sizes)
        self.epochs = [0] * len(sizes)

    def next_key(self) -> tuple[int, int]:
        d = self.rng.choices(range(len(self.order)), weights=self.weights)[0]
        if self.cursors[d] >= len(self.order[d]):
            self.cursors[d] = 0
            self.epochs[d] += 1
        rec = self.order[d][self.cursors[d]]
        self.cursors[d] += 1
        return d, rec

    def state(self) -> dict:
        return {"rng": self.rng.getstate(), "cursors": list(self.cursors), "epochs": list(self.epochs)}

    def load_state(self, st: dict) -> None:
        rng_state = st["rng"]
        self.rng.setstate((rng_state[0], tuple(rng_state[1]), rng_state[2]))
        self.cursors, self.epochs = list(st["cursors"]), list(st["epochs"])


class PackedStream:
    """Endless, resumable stream of packed groups over several datasets, each rank packing its own shard of the
    records (RecordSampler) with the greedy buffer. `state()` / `load_state()` capture the exact position (RNG,
    cursors, buffered sample keys) so a resumed run sees the same batches.
    """

    def __init__(self, sizes: list[int], build: Callable[[int, int], Sample | None], seed: int = 42,
                 rank: int = 0, world: int = 1, opts: PackingOptions = PackingOptions()):
        self.build, self.opts = build, opts
        self.sampler = RecordSampler(sizes, seed, rank, world)
        self.buffer = PackedBuffer(opts)
        self.ready: list[list[Sample]] = []

    def __iter__(self) -> Iterator[list[Sample]]:
        return self

    def __next__(self) -> list[Sample]:
        while not self.ready:
            d, rec = self.sampler.next_key()
            sample = self.build(d, rec)
            if sample is not None:
                self.ready.extend(self.buffer.add(sample))
        return self.ready.pop(0)

    def state(self) -> dict:
        return {**self.sampler.state(), "buffers": self.buffer.keys(),
                "ready": [[s.key for s in g] for g in self.ready]}

    def load_state(self, st: dict) -> None:
        self.sampler.load_state(st)
        rebuild = lambda keys: [s for s in (self.build(int(d), int(r)) for d, r, *_ in keys) if s is not None]
        if "pending" in st:     # a token-balanced stream's position (another world size, or balance_ranks off)
            self.buffer.buffers, self.ready = [], []
            for sample in rebuild(st["pending"]):
                self.ready.extend(self.buffer.add(sample))
            return
        self.buffer.buffers = [rebuild(b) for b in st["buffers"]]
        self.ready = [rebuild(g) for g in st["ready"]]


class BalancedStream:
    """Endless, resumable stream of one rank's packed groups, token-balanced across the `world` ranks.

    Every rank draws the same keys (one RecordSampler over all records, same seed) and measures each drawn record
    (`measure`: its SampleShape without building it, or None where that is not possible: the record is then built on
    every rank). The pending records, identical on every rank, are dealt each step by `balanced_deal` (the rule of
    `balanced_rank_packs`), so the ranks' groups hold (nearly) equal real tokens and every record is used by exactly
    one rank; each rank builds only its own group. Limits as in the buffer: max_packed_tokens and
    max_instance_per_batch per group, samples longer than max_packed_tokens cut (or dropped when the cut falls inside
    the image); a long sample may share its group. `state()` holds the sampler and the pending keys with their
    lengths, so a resumed run deals the same groups.
    """

    def __init__(self, sizes: list[int], build: Callable[[int, int], Sample | None],
                 measure: Callable[[int, int], SampleShape | None], seed: int = 42, rank: int = 0, world: int = 2,
                 opts: PackingOptions = PackingOptions()):
        self.build, self.measure, self.opts, self.rank, self.world = build, measure, opts, rank, world
        self.sampler = RecordSampler(sizes, seed)
        self.pending: list[tuple[int, int, int]] = []     # (dataset, record, tokens after truncation)
        self.prebuilt: dict[tuple[int, int], Sample] = {}  # records measured by building them

    def __iter__(self) -> Iterator[list[Sample]]:
        return self

    def _packed_length(self, d: int, rec: int) -> int | None:
        shape = self.measure(d, rec)
        if shape is None:
            sample = self.build(d, rec)
            if sample is None:
                return None
            self.prebuilt[(d, rec)] = sample
            shape = SampleShape.of(sample.input_ids)
        return truncated_length(shape, self.opts.max_packed_tokens)

    def _refill(self) -> None:
        """Pending records for about two steps (tokens or instances), so the deal can even the ranks out."""
        o, w = self.opts, self.world
        while (sum(n for _, _, n in self.pending) < 2 * w * o.max_packed_tokens
               and len(self.pending) < 2 * w * o.max_instance_per_batch):
            d, rec = self.sampler.next_key()
            n = self._packed_length(d, rec)
            if n is not None:
                self.pending.append((d, rec, n))

    def _sample(self, d: int, rec: int, n: int) -> Sample | None:
        sample = self.prebuilt.pop((d, rec)) if (d, rec) in self.prebuilt else self.build(d, rec)
        cut = truncate_long(sample, self.opts.max_packed_tokens) if sample is not None else None
        if cut is None or len(cut) != n:
            warnings.warn(f"record {rec} of dataset {d}: measured {n} packed tokens, built "
                          f"{None if cut is None else len(cut)}; the ranks' groups are less even this step")
        return cut

    def __next__(self) -> list[Sample]:
        self._refill()
        o = self.opts
        packs, left = balanced_deal([n for _, _, n in self.pending], self.world, o.max_packed_tokens,
                                    o.max_instance_per_batch)
        dealt = [[self.pending[i] for i in p] for p in packs]
        self.pending = [self.pending[i] for i in left]
        for r, pack in enumerate(dealt):
            if r != self.rank:
                for d, rec, _ in pack:
                    self.prebuilt.pop((d, rec), None)
        group = [s for s in (self._sample(*key) for key in dealt[self.rank]) if s is not None]
        if not group:
            raise RuntimeError("a token-balanced step left this rank without a sample (measured and built sample "
                               "lengths disagree)")
        return group

    def state(self) -> dict:
        return {**self.sampler.state(), "pending": [list(k) for k in self.pending]}

    def load_state(self, st: dict) -> None:
        if "pending" not in st:
            # a per-rank stream's position differs from rank to rank, so it cannot give every rank the same one
            warnings.warn("resuming a checkpoint of per-rank packing with token-balanced ranks: the record order "
                          "starts again")
            return
        self.sampler.load_state(st)
        self.pending = [(int(d), int(r), int(n)) for d, r, n in st["pending"]]
        self.prebuilt = {}


def packed_stream(sizes: list[int], build: Callable[[int, int], Sample | None],
                  measure: Callable[[int, int], SampleShape | None], *, seed: int, rank: int, world: int,
                  opts: PackingOptions, balance: bool) -> PackedStream | BalancedStream:
    """The training stream: token-balanced across ranks when `balance` and world > 1, else each rank packs its own
    shard (world 1: always)."""
    if balance and world > 1:
        return BalancedStream(sizes, build, measure, seed, rank, world, opts)
    return PackedStream(sizes, build, seed, rank, world, opts)


def collate(group: list[Sample], mode: str = "pad") -> dict:
    """One micro-batch. `lvr_target` holds, per `<|lvr|>` token in row-major order, the index of its ground-truth
    visual token in the concatenated image features (offsets by batch row; fixes §8.7's per-bbox offset)."""
    pv = torch.from_numpy(np.concatenate([s.pixel_values for s in group], 0))
    grids = torch.tensor([g for s in group for g in s.image_grid_thw], dtype=torch.long)
    targets, offset = [], 0
    for s in group:
        targets.extend(offset + i for i in s.lvr_index)
        offset += sum(t * h * w // 4 for t, h, w in s.image_grid_thw)
    batch = {"pixel_values": pv, "image_grid_thw": grids, "lvr_target": torch.tensor(targets, dtype=torch.long),
             "num_instances": len(group)}
    if mode == "flat":
        batch["input_ids"] = torch.tensor([sum((s.input_ids for s in group), [])], dtype=torch.long)
        batch["labels"] = torch.tensor([sum((s.labels for s in group), [])], dtype=torch.long)
        batch["seq_lens"] = [len(s) for s in group]
        batch["images_per_seq"] = [len(s.image_grid_thw) for s in group]
        batch["attention_mask"] = None
    elif mode == "pad":
        L = max(len(s) for s in group)
        ids = torch.full((len(group), L), T.PAD_ID, dtype=torch.long)
        labels = torch.full((len(group), L), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(group), L), dtype=torch.long)
        for b, s in enumerate(group):
            ids[b, :len(s)] = torch.tensor(s.input_ids)
            labels[b, :len(s)] = torch.tensor(s.labels)
            mask[b, :len(s)] = 1
        batch.update(input_ids=ids, labels=labels, attention_mask=mask)
    else:
        raise ValueError(f"packing mode must be 'pad' or 'flat', got {mode!r}")
    return batch


def pin_batch(batch: dict) -> dict:
    """The batch's tensors (also those of nested dicts such as the host plan) in page-locked host memory (needs
    CUDA)."""
    return {k: (v.pin_memory() if torch.is_tensor(v) else pin_batch(v) if isinstance(v, dict) else v)
            for k, v in batch.items()}


class Prefetcher:
    """Builds the next groups (image decode, resize, patchify, collate) in a background thread while the GPU works.

    Each item carries the stream state right after its group, so a checkpoint records exactly what was consumed
    (`state()`), not what was prefetched. `prepare` (optional) runs on each collated batch in the same thread, before
    pinning: the host-side step indexing of lvr.train.host_plan.
    """

    def __init__(self, stream: PackedStream, mode: str, depth: int = 2, pin: bool = False,
                 prepare: Callable[[dict], dict] | None = None):
        import queue
        import threading

        self.stream, self.mode, self.pin, self.prepare = stream, mode, pin, prepare
        self.q: "queue.Queue" = queue.Queue(maxsize=depth)
        self._state = stream.state()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._work, daemon=True, name="lvr-prefetch")
        self.thread.start()

    def _work(self) -> None:
        import queue

        while not self._stop.is_set():
            try:
                group = next(self.stream)
                batch = collate(group, self.mode)
                if self.prepare is not None:
                    batch = self.prepare(batch)
                if self.pin:   # page-locked, so the trainer's non_blocking copies are real async DMA
                    batch = pin_batch(batch)
                item = (batch, self.stream.state(), None)
            except BaseException as e:  # surfaced in the training thread
                item = (None, None, e)
            while not self._stop.is_set():
                try:
                    self.q.put(item, timeout=0.5)
                    break
                except queue.Full:
                    continue
            if item[2] is not None:
                return

    def next(self) -> dict:
        batch, state, err = self.q.get()
        if err is not None:
            raise err
        self._state = state
        return batch

    def state(self) -> dict:
        return self._state

    def close(self) -> None:
        self._stop.set()


def balanced_deal(lengths: list[int], world: int, max_tokens: int,
                  max_instances: int | None = None) -> tuple[list[list[int]], list[int]]:
    """One step's packs for `world` ranks with (nearly) equal real tokens, from the lengths of pending samples that
    every rank holds identically (same seed): the rank with the fewest tokens so far takes the longest pending sample
    that still fits its pack (<= max_tokens tokens, < max_instances samples), until no pending sample fits any rank.
    Ranks then differ by less than about one sample, so none waits for a fuller one at the gradient reduce-scatter.
    Returns (indices into `lengths` by rank, indices left for the next step, in order); each index is in exactly one
    of them."""
    pending = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    packs: list[list[int]] = [[] for _ in range(world)]
    used = [0] * world
    open_ranks = set(range(world))
    while open_ranks and pending:
        r = min(open_ranks, key=lambda k: (used[k], k))
        full = max_instances is not None and len(packs[r]) >= max_instances
        fit = None if full else next((j for j, i in enumerate(pending) if used[r] + lengths[i] <= max_tokens), None)
        if fit is None:
            open_ranks.discard(r)
            continue
        i = pending.pop(fit)
        packs[r].append(i)
        used[r] += lengths[i]
    return packs, sorted(pending)


def balanced_rank_packs(pool: list[Sample], world: int, max_tokens: int,
                        max_instances: int | None = None) -> tuple[list[list[Sample]], list[Sample]]:
    """`balanced_deal` over samples: (packs by rank, samples left for the next step)."""
    packs, left = balanced_deal([len(s) for s in pool], world, max_tokens, max_instances)
    return [[pool[i] for i in p] for p in packs], [pool[i] for i in left]
