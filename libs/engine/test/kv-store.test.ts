import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { packRows } from '../src/runtime/kv-batch';
import { GraphKvPacker, HostKvPacker } from '../src/runtime/kv-packers';
import type { KvShape } from '../src/runtime/kv-packers';
import { KvStore } from '../src/runtime/kv-store';
import type { KvCache, KvFeeds, KvPacker, KvRowRef } from '../src/runtime/kv-store';

const KVH = 2;
const D = 3;
const NAMES = ['past_key_values.0.key', 'past_key_values.0.value'];

/** Stand-in for a device tensor: host data plus a live/disposed flag tracked by a registry (the leak check). */
class FakeTensor {
  disposed = false;
  constructor(
    readonly registry: Set<FakeTensor>,
    readonly data: Float32Array,
  ) {
    registry.add(this);
  }
  dispose(): void {
    assert.equal(this.disposed, false, 'a tensor is disposed twice');
    this.disposed = true;
    this.registry.delete(this);
  }
}

class FakePacker implements KvPacker<FakeTensor> {
  calls = 0;
  failNext = false;
  constructor(readonly registry: Set<FakeTensor>) {}
  async pack(rows: ReadonlyArray<KvRowRef<FakeTensor>>, width: number): Promise<KvFeeds<FakeTensor>> {
    this.calls++;
    for (const { cache } of rows)
      for (const t of Object.values(cache.past)) assert.equal(t.disposed, false, 'packing a disposed tensor');
    if (this.failNext) {
      this.failNext = false;
      throw new Error('device lost');
    }
    const out: KvFeeds<FakeTensor> = {};
    for (const name of NAMES)
      out[name] = new FakeTensor(
        this.registry,
        packRows(
          rows.map(({ cache, row }) => ({
            data: cache.past[name].data,
            width: cache.width,
            row,
            len: cache.lens[row],
          })),
          width,
          KVH,
          D,
        ) as Float32Array,
      );
    return out;
  }
}

/** A one-row cache of `len` slots whose slot p holds seq*100 + p + 1 (key) or its negation (value). */
function rowPast(registry: Set<FakeTensor>, seq: number, len: number, from = 0): KvFeeds<FakeTensor> {
  const past: KvFeeds<FakeTensor> = {};
  NAMES.forEach((name, k) => {
    const a = new Float32Array(KVH * len * D);
    for (let h = 0; h < KVH; h++)
      for (let p = 0; p < len; p++)
        a.fill((k ? -1 : 1) * (seq * 100 + from + p + 1), (h * len + p) * D, (h * len + p + 1) * D);
    past[name] = new FakeTensor(registry, a);
  });
  return past;
}

/** The real slots of `seq`'s row in `cache` (head 0, first of D), oldest first. */
function slots(cache: KvCache<FakeTensor>, seq: number): number[] {
  const b = cache.seqs.indexOf(seq);
  const len = cache.lens[b];
  const data = cache.past[NAMES[0]].data;
  const out: number[] = [];
  for (let p = cache.width - len; p < cache.width; p++) out.push(data[((b * KVH + 0) * cache.width + p) * D]);
  return out;
}

/** Presents of a step over `cache`: every row one slot longer, the new slot = seq*100 + its index + 1. */
function stepPresent(registry: Set<FakeTensor>, cache: KvCache<FakeTensor>): KvFeeds<FakeTensor> {
  const w = cache.width + 1;
  const present: KvFeeds<FakeTensor> = {};
  NAMES.forEach((name, k) => {
    const a = new Float32Array(cache.seqs.length * KVH * w * D);
    const old = cache.past[name].data;
    cache.seqs.forEach((seq, b) => {
      for (let h = 0; h < KVH; h++) {
        a.set(
          old.subarray((b * KVH + h) * cache.width * D, (b * KVH + h + 1) * cache.width * D),
          (b * KVH + h) * w * D,
        );
        a.fill(
          (k ? -1 : 1) * (seq * 100 + cache.lens[b] + 1),
          ((b * KVH + h) * w + w - 1) * D,
          ((b * KVH + h) * w + w) * D,
        );
      }
    });
    present[name] = new FakeTensor(registry, a);
  });
  return present;
}

const range = (seq: number, n: number) => Array.from({ length: n }, (_, p) => seq * 100 + p + 1);

describe('KvStore (device-tensor bookkeeping)', () => {
  it('a lone prefilled sequence becomes the batch without a copy, and every tensor is freed when it ends', async () => {
    const live = new Set<FakeTensor>();
    const packer = new FakePacker(live);
    const store = new KvStore(packer);
    const prefill = rowPast(live, 1, 5);
    store.park(1, 5, prefill);
    let batch = await store.arrange([1]);
    assert.equal(packer.calls, 0);
    assert.equal(batch.past[NAMES[0]], prefill[NAMES[0]]);
    for (let i = 0; i < 3; i++) {
      store.advance(batch, stepPresent(live, batch));
      assert.equal(live.size, NAMES.length, 'only the current cache is alive');
    }
    batch = await store.arrange([1]);
    assert.deepEqual(slots(batch, 1), range(1, 8));
    store.release(1);
    assert.equal(live.size, 0);
    assert.deepEqual(store.liveSequences(), []);
  });

  it('joins, leaves and cancellations repack rows in order, park live rows and free the rest', async () => {
    const live = new Set<FakeTensor>();
    const packer = new FakePacker(live);
    const store = new KvStore(packer);
    store.park(1, 4, rowPast(live, 1, 4));
    let batch = await store.arrange([1]);
    store.advance(batch, stepPresent(live, batch)); // seq 1: 5 slots
    store.park(2, 2, rowPast(live, 2, 2));
    store.park(3, 7, rowPast(live, 3, 7));
    batch = await store.arrange([1, 2, 3]);
    assert.equal(batch.width, 7);
    assert.deepEqual(batch.lens, [5, 2, 7]);
    assert.deepEqual(slots(batch, 1), range(1, 5));
    assert.deepEqual(slots(batch, 2), range(2, 2));
    assert.deepEqual(slots(batch, 3), range(3, 7));
    assert.equal(live.size, NAMES.length, 'joined parked caches were freed');
    store.advance(batch, stepPresent(live, batch));
    // Seq 2 is cancelled mid-batch: its row stays until the next repack, which drops it.
    store.release(2);
    assert.deepEqual(store.liveSequences().sort(), [1, 2, 3]);
    // A step without seq 1 (it waits): seq 1 is parked at its own length, seq 2 dropped.
    batch = await store.arrange([3]);
    assert.deepEqual(batch.lens, [8]);
    assert.equal(batch.width, 8);
    assert.deepEqual(slots(batch, 3), range(3, 8));
    assert.deepEqual(store.liveSequences().sort(), [1, 3]);
    assert.equal(live.size, 2 * NAMES.length);
    await assert.rejects(store.arrange([2]), /no KV cache/);
    batch = await store.arrange([3, 1]);
    assert.deepEqual(slots(batch, 1), range(1, 6));
    assert.deepEqual(slots(batch, 3), range(3, 8));
    store.release(3);
    store.release(1);
    assert.equal(live.size, 0, 'nothing leaks once every sequence ended');
  });

  it('a failed repack leaks nothing and leaves the caches usable', async () => {
    const live = new Set<FakeTensor>();
    const packer = new FakePacker(live);
    const store = new KvStore(packer);
    store.park(1, 3, rowPast(live, 1, 3));
    store.park(2, 3, rowPast(live, 2, 3));
    packer.failNext = true;
    await assert.rejects(store.arrange([1, 2]), /device lost/);
    assert.equal(live.size, 2 * NAMES.length);
    const batch = await store.arrange([1, 2]);
    assert.deepEqual(slots(batch, 2), range(2, 3));
    assert.throws(() => store.park(1, 1, rowPast(live, 1, 1)), /already exists/);
    assert.equal(live.size, NAMES.length, 'the rejected cache was freed');
    store.clear();
    assert.equal(live.size, 0);
  });
});

describe('GraphKvPacker (device repack graphs) on the CPU execution provider', () => {
  for (const dtype of ['float32', 'float16'] as const) {
    it(`matches the host packer for interleaved sources, wider and narrower widths (${dtype})`, async () => {
      const shape: KvShape = { names: NAMES, numKvHeads: KVH, headDim: D, dtype };
      const make = (seqs: number[], lens: number[], width: number): KvCache<ort.Tensor> => {
        const past: KvFeeds<ort.Tensor> = {};
        NAMES.forEach((name, k) => {
          const n = seqs.length * KVH * width * D;
          const a = dtype === 'float16' ? new Uint16Array(n) : new Float32Array(n);
          lens.forEach((len, b) => {
            for (let i = b * KVH * width * D; i < (b + 1) * KVH * width * D; i++) {
              const p = Math.floor(i / D) % width;
              if (p >= width - len) a[i] = 1 + k + 7 * b + ((i * 13) % 97);
            }
          });
          past[name] = new ort.Tensor(dtype, a, [seqs.length, KVH, width, D]);
        });
        return { seqs, lens, width, past };
      };
      const batch = make([1, 2, 3], [3, 6, 1], 6);
      const parked = make([4], [4], 4);
      const graph = await GraphKvPacker.create(shape, { executionProviders: ['cpu'] });
      const host = new HostKvPacker(shape);
      const cases: Array<[KvRowRef<ort.Tensor>[], number]> = [
        [
          [
            { cache: batch, row: 2 },
            { cache: parked, row: 0 },
            { cache: batch, row: 0 },
          ],
          4,
        ],
        [
          [
            { cache: batch, row: 1 },
            { cache: parked, row: 0 },
          ],
          6,
        ],
        [[{ cache: parked, row: 0 }], 7],
        [[{ cache: batch, row: 0 }], 3],
      ];
      for (const [rows, width] of cases) {
        const want = await host.pack(rows, width);
        const got = await graph.pack(rows, width);
        for (const name of NAMES) {
          assert.deepEqual(got[name].dims, want[name].dims);
          assert.deepEqual(got[name].data, want[name].data, `${name} for width ${width}`);
        }
      }
      await graph.release();
    });
  }
});
