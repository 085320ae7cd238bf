"""Packing (LVR-SPEC §2.7): the InternVL-style greedy buffer, a sampled multi-dataset stream, and the collator.

The buffer groups samples (<= max_instance_per_batch, <= max_packed_tokens) into one micro-batch per step. The
collator then either splits the group back into right-padded rows, exactly as upstream does (`mode="pad"`), or
concatenates it into one row with per-instance positions and block-diagonal attention (`mode="flat"`, no padding
FLOPs). Both give the same losses: instances never attend to each other and the means run over the same targets.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from .. import tokens as T
from .sft import IGNORE, Sample


@dataclass(frozen=True)
class PackingOptions:
    max_packed_tokens: int = 16384
    long_seq_threshold: int = 4096
    max_instance_per_batch: int = 4
    max_buffer_size: int = 100
    allow_overflow: bool = True


def truncate_long(sample: Sample, max_tokens: int) -> Sample | None:
    """Cut a sample to max_tokens; None (dropped) if the cut falls inside the image (§2.7)."""
    if len(sample) <= max_tokens:
        return sample
    ids = sample.input_ids
    last_vision = max((i for i, t in enumerate(ids) if t in (T.IMAGE_PAD_ID, T.VISION_END_ID)), default=-1)
    if last_vision >= max_tokens:
        return None
    kept = ids[:max_tokens]
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


class PackedStream:
    """Endless, resumable stream of packed groups over several datasets (replacement=True, §2.1).

    Each dataset's record list is shuffled once with `seed` and sharded by global rank; a dataset is drawn with
    probability proportional to its length, and restarts when exhausted. `state()` / `load_state()` capture the
    exact position (RNG, cursors, buffered sample keys) so a resumed run sees the same batches.
    """

    def __init__(self, sizes: list[int], build: Callable[[int, int], Sample | None], seed: int = 42,
                 rank: int = 0, world: int = 1, opts: PackingOptions = PackingOptions()):
        self.build, self.opts = build, opts
        self.order = []
        for d, n in enumerate(sizes):
            idx = list(range(n))
            random.Random(seed).shuffle(idx)
            shard = idx[rank::world] or idx  # a dataset smaller than the world is repeated, never empty
            self.order.append(shard)
        self.weights = [len(o) for o in self.order]
        self.rng = random.Random(seed * 1000003 + rank)
        self.cursors = [0] * len(sizes)
        self.epochs = [0] * len(sizes)
        self.buffer = PackedBuffer(opts)
        self.ready: list[list[Sample]] = []

    def _next_key(self) -> tuple[int, int]:
        d = self.rng.choices(range(len(self.order)), weights=self.weights)[0]
        if self.cursors[d] >= len(self.order[d]):
            self.cursors[d] = 0
            self.epochs[d] += 1
        rec = self.order[d][self.cursors[d]]
        self.cursors[d] += 1
        return d, rec

    def __iter__(self) -> Iterator[list[Sample]]:
        return self

    def __next__(self) -> list[Sample]:
        while not self.ready:
            d, rec = self._next_key()
            sample = self.build(d, rec)
            if sample is not None:
                self.ready.extend(self.buffer.add(sample))
        return self.ready.pop(0)

    def state(self) -> dict:
        return {"rng": self.rng.getstate(), "cursors": list(self.cursors), "epochs": list(self.epochs),
                "buffers": self.buffer.keys(), "ready": [[s.key for s in g] for g in self.ready]}

    def load_state(self, st: dict) -> None:
        rng_state = st["rng"]
        self.rng.setstate((rng_state[0], tuple(rng_state[1]), rng_state[2]))
        self.cursors, self.epochs = list(st["cursors"]), list(st["epochs"])
        rebuild = lambda keys: [s for s in (self.build(int(d), int(r)) for d, r in keys) if s is not None]
        self.buffer.buffers = [rebuild(b) for b in st["buffers"]]
        self.ready = [rebuild(g) for g in st["ready"]]


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
    """The batch's tensors in page-locked host memory (needs CUDA)."""
    return {k: (v.pin_memory() if torch.is_tensor(v) else v) for k, v in batch.items()}


class Prefetcher:
    """Builds the next groups (image decode, resize, patchify, collate) in a background thread while the GPU works.

    Each item carries the stream state right after its group, so a checkpoint records exactly what was consumed
    (`state()`), not what was prefetched.
    """

    def __init__(self, stream: PackedStream, mode: str, depth: int = 2, pin: bool = False):
        import queue
        import threading

        self.stream, self.mode, self.pin = stream, mode, pin
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
