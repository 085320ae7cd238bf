"""Token-balanced multi-rank SFT stream (lvr.data.packing.BalancedStream): measured lengths equal built ones, every
record of an epoch goes to exactly one rank, ranks' groups differ by less than a sample, limits hold, a resumed
stream deals the same groups, world 1 keeps the per-rank stream, and two gloo processes deal what one process
simulates."""

from __future__ import annotations

import json
from collections import Counter
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lvr import tokens as T
from lvr.data.packing import (BalancedStream, PackedStream, PackingOptions, RecordSampler, balanced_deal,
                              balanced_rank_packs, packed_stream, truncate_long)
from lvr.data.records import validate_sft_record
from lvr.data.sft import IGNORE, Sample, SampleShape, SftDataOptions, build_sft_sample, measure_sft_sample
from lvr.train.overrides import coerce
from lvr.train.train_config import TrainConfig

import _balanced_two_ranks as V

REPO = Path(__file__).resolve().parents[3]
N_VARIED, N_GLOO = 30, 200


@pytest.fixture(scope="module")
def varied_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("varied")
    V.write_varied_images(d)
    return d


@pytest.mark.parametrize("opts", [SftDataOptions(min_pixels=3136, max_pixels=50176),
                                  SftDataOptions(),           # stage-1 defaults: 128..5120 merged tokens
                                  SftDataOptions(insert_latent_end=False, keep_text_before_lvr=False,
                                                 min_pixels=56 * 56, max_pixels=200 * 28 * 28)])
def test_measured_shape_equals_the_built_sample(codec, varied_dir, opts):
    for i, raw in enumerate(V.varied_records(N_VARIED)):
        rec = validate_sft_record(raw, "sft.json", i, str(varied_dir))
        built = build_sft_sample(rec, codec, str(varied_dir), opts)
        assert measure_sft_sample(rec, codec, str(varied_dir), opts) == SampleShape.of(built.input_ids), raw["image"]


def test_measure_reports_a_bad_record_as_the_build_does(codec, varied_dir):
    from lvr.data.errors import DataError

    rec = validate_sft_record(V.varied_records(1)[0] | {"image": "missing.png"}, "sft.json", 4, str(varied_dir))
    with pytest.raises(DataError, match="record 4.*field 'image'"):
        measure_sft_sample(rec, codec, str(varied_dir))


def _synthetic(n: int, seed: int = 0, unmeasurable=()):
    """build/measure over n records of 40..300 tokens (an image of 8 pads first, 3 records longer than the
    pack limit: two cut after their image, one cut inside it, hence dropped); `unmeasurable` records measure None."""
    rng = np.random.default_rng(seed)
    lengths = [int(x) for x in rng.integers(40, 300, n)]
    lengths[3], lengths[11] = 450, 520
    vision_end = {i: 9 for i in range(n)}
    lengths[17], vision_end[17] = 480, 430
    builds: list = []

    def build(d, i):
        builds.append((d, i))
        ids = [T.VISION_START_ID] + [T.IMAGE_PAD_ID] * (vision_end[i] - 1) + [T.VISION_END_ID]
        ids += [5] * (lengths[i] - len(ids))
        return Sample(ids, [IGNORE] * len(ids), np.zeros((4, 4), np.float32), [(1, 4, 4)], [], key=(d, i))

    def measure(d, i):
        return None if i in unmeasurable else SampleShape(lengths[i], vision_end[i])

    return build, measure, builds


OPTS = PackingOptions(max_packed_tokens=400, long_seq_threshold=300, max_instance_per_batch=4)


def _run(streams, steps):
    return [[next(s) for s in streams] for _ in range(steps)]


def test_two_ranks_use_each_record_once_with_even_tokens():
    n, odd = 60, {(0, 5), (0, 23)}
    build, measure, builds = _synthetic(n, unmeasurable={5, 23})
    streams = [BalancedStream([n], build, measure, seed=3, rank=r, world=2, opts=OPTS) for r in range(2)]
    dealt = []
    while streams[0].sampler.epochs[0] == 0:
        groups = [next(s) for s in streams]
        sizes = [sum(len(x) for x in g) for g in groups]
        assert all(g for g in groups)
        assert all(size <= OPTS.max_packed_tokens and len(g) <= OPTS.max_instance_per_batch
                   for size, g in zip(sizes, groups))
        assert max(sizes) - min(sizes) <= max(len(x) for g in groups for x in g)
        dealt += [x.key for g in groups for x in g]
    assert streams[1].pending == streams[0].pending                     # every rank holds the same pending list
    sampler = streams[0].sampler
    drawn = sampler.order[0] + sampler.order[0][:sampler.cursors[0]]    # one epoch, and the next one begun
    seen = dealt + [(d, r) for d, r, _ in streams[0].pending]
    assert Counter(seen) == Counter((0, i) for i in drawn if i != 17)   # each draw once; 17: its cut hits the image
    assert len(set(dealt)) > n // 2 and len(seen) >= n - 1
    assert sorted(k for k in builds if k not in odd) == sorted(k for k in dealt if k not in odd)  # own samples only
    assert builds.count((0, 5)) >= 2                    # an unmeasurable record is built on every rank


def test_long_samples_are_cut_as_in_the_buffer():
    n = 30
    build, measure, _ = _synthetic(n)
    streams = [BalancedStream([n], build, measure, seed=3, rank=r, world=2, opts=OPTS) for r in range(2)]
    samples = {x.key: x for step in _run(streams, 12) for g in step for x in g}
    for key in ((0, 3), (0, 11)):
        assert key in samples
        assert samples[key].input_ids == truncate_long(build(*key), OPTS.max_packed_tokens).input_ids
        assert len(samples[key]) == OPTS.max_packed_tokens
    assert (0, 17) not in samples


def test_balanced_stream_resumes_identically():
    n = 50
    build, measure, _ = _synthetic(n, seed=1, unmeasurable={2, 9})
    make = lambda r: BalancedStream([n, 7], build, measure, seed=5, rank=r, world=2, opts=OPTS)
    a = [make(0), make(1)]
    _run(a, 6)
    st = [json.loads(json.dumps(s.state())) for s in a]          # JSON round trip, as in a checkpoint
    assert st[0]["pending"]                                        # the snapshot holds dealt-but-pending records
    rest_a = [[[(x.key, x.input_ids) for x in g] for g in step] for step in _run(a, 10)]
    b = [make(0), make(1)]
    for s, state in zip(b, st):
        s.load_state(state)
    assert [[[(x.key, x.input_ids) for x in g] for g in step] for step in _run(b, 10)] == rest_a

    one = PackedStream([n, 7], build, seed=5, opts=OPTS)    # the same checkpoint resumed on one process
    one.load_state(st[0])
    keys = [x.key for _ in range(12) for x in next(one)]
    pending = [(d, r) for d, r, _ in st[0]["pending"]]
    held = [k for b in one.buffer.keys() for k in b] + [x.key for g in one.ready for x in g]
    sampler = RecordSampler([n, 7], seed=5)
    sampler.load_state(st[0])
    drawn = []
    while sampler.state() != one.sampler.state() and len(drawn) < 500:
        drawn.append(sampler.next_key())
    drawn = [k for k in drawn if k != (0, 17)]                # dropped: its cut falls inside the image
    assert Counter(keys + held) == Counter(pending + drawn)   # pending records first, then the draws go on
    old = PackedStream([n], build, seed=5, rank=1, world=2, opts=OPTS)
    _run([old], 3)
    c = make(1)
    with pytest.warns(UserWarning, match="starts again"):     # per-rank positions differ: all ranks start over
        c.load_state(json.loads(json.dumps(old.state())))
    fresh = make(1)
    assert [[x.key for x in next(c)] for _ in range(4)] == [[x.key for x in next(fresh)] for _ in range(4)]


def test_world_one_and_the_knob_keep_the_per_rank_stream():
    build, measure, _ = _synthetic(40)
    for balance in (True, False):
        one = packed_stream([40, 9], build, measure, seed=4, rank=0, world=1, opts=OPTS, balance=balance)
        ref = PackedStream([40, 9], build, seed=4, rank=0, world=1, opts=OPTS)
        assert type(one) is PackedStream
        assert [[x.key for x in next(one)] for _ in range(12)] == [[x.key for x in next(ref)] for _ in range(12)]
    off = packed_stream([40], build, measure, seed=4, rank=1, world=2, opts=OPTS, balance=False)
    assert type(off) is PackedStream and off.sampler.order[0] == PackedStream([40], build, 4, 1, 2).sampler.order[0]
    assert type(packed_stream([40], build, measure, seed=4, rank=1, world=2, opts=OPTS, balance=True)) \
        is BalancedStream
    assert coerce("balance_ranks", "false") is False
    assert TrainConfig(run_id="t", stage="sft", model_uri="-", data_uri="-", checkpoint_uri="-",
                       bundle_uri="-").balance_ranks is None                       # auto: on when world > 1


def test_balanced_deal_respects_the_instance_limit():
    lengths = [100] * 3 + [10] * 20
    packs, left = balanced_deal(lengths, 2, 400, max_instances=4)
    assert [len(p) for p in packs] == [4, 4]
    assert sorted([i for p in packs for i in p] + left) == list(range(len(lengths)))
    pool = [Sample([1] * n, [IGNORE] * n, np.zeros((0, 4), np.float32), [], [], key=(0, i))
            for i, n in enumerate(lengths)]
    by_samples, rest = balanced_rank_packs(pool, 2, 400, 4)
    assert [[s.key[1] for s in p] for p in by_samples] == packs and [s.key[1] for s in rest] == left


def test_two_gloo_processes_deal_what_one_process_simulates(tiny_dir, varied_dir, tmp_path):
    out = tmp_path / "balanced.json"
    env = dict(os.environ, PYTHONPATH=str(REPO / "workers"), OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(Path(__file__).with_name("_balanced_two_ranks.py")), str(tiny_dir), str(varied_dir),
                        str(N_GLOO), str(out)], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    steps = res["steps"]
    sim = [V.real_stream(str(tiny_dir), str(varied_dir), N_GLOO, rank, 2) for rank in range(2)]
    assert steps == [[[[*x.key, len(x)] for x in next(s)] for s in sim] for _ in range(V.STEPS)]
    keys = [(d, i) for step in steps for g in step for d, i, _ in g]
    assert len(keys) == len(set(keys))          # 8 steps stay inside the first epoch: no repeats
    for groups in steps:
        sizes = [sum(n for *_, n in g) for g in groups]
        assert all(groups) and max(sizes) <= V.MAX_TOKENS
        assert max(sizes) - min(sizes) <= max(n for g in groups for *_, n in g)
    assert res["builds"] == [sum(len(step[r]) for step in steps) for r in range(2)]   # each rank built its own only
