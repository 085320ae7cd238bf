import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Channel, Slots, StepBatcher } from '../src/decoding/batcher';
import { PrefillBatcher } from '../src/decoding/prefill-batcher';
import { FusedKvSlots } from '../src/runtime/fused-kv-slots';
import { leftPaddedMask, packRows } from '../src/runtime/kv-batch';
import type { PrefillRequest, StepRow } from '../src/runtime/protocol';

/** [B, KVH, W, D] array whose slot (b, h, p) holds value code(b, h, p) in every d, zeros in padding. */
function cache(
  lens: number[],
  width: number,
  kvh: number,
  d: number,
  code: (b: number, h: number, p: number) => number,
) {
  const a = new Float32Array(lens.length * kvh * width * d);
  lens.forEach((len, b) => {
    for (let h = 0; h < kvh; h++)
      for (let p = width - len; p < width; p++)
        a.fill(
          code(b, h, p - (width - len)),
          ((b * kvh + h) * width + p) * d,
          ((b * kvh + h) * width + p + 1) * d,
        );
  });
  return a;
}

describe('KV batch layout (left padding)', () => {
  it('packRows right-aligns rows from caches of different widths and zero-fills the padding', () => {
    const kvh = 2;
    const d = 3;
    // Batch of 2 rows (lens 2 and 4, width 5) and a parked single row of 3 slots.
    const batch = cache([2, 4], 5, kvh, d, (b, h, p) => 100 * (b + 1) + 10 * h + p + 1);
    const parked = cache([3], 3, kvh, d, (_b, h, p) => 900 + 10 * h + p + 1);
    const out = packRows(
      [
        { data: parked, width: 3, row: 0, len: 3 },
        { data: batch, width: 5, row: 1, len: 4 },
        { data: batch, width: 5, row: 0, len: 2 },
      ],
      4,
      kvh,
      d,
    );
    const expected = cache([3, 4, 2], 4, kvh, d, (b, h, p) =>
      b === 0 ? 900 + 10 * h + p + 1 : b === 1 ? 200 + 10 * h + p + 1 : 100 + 10 * h + p + 1,
    );
    assert.deepEqual(out, expected);
    // Extracting a row into its own cache of exactly its length gives back the original slots.
    const row1 = packRows([{ data: out, width: 4, row: 1, len: 4 }], 4, kvh, d);
    assert.deepEqual(
      row1,
      cache([4], 4, kvh, d, (_b, h, p) => 200 + 10 * h + p + 1),
    );
    assert.ok(
      packRows([{ data: new Uint16Array(6), width: 1, row: 0, len: 1 }], 2, 2, 3) instanceof Uint16Array,
    );
    assert.throws(() => packRows([{ data: batch, width: 5, row: 1, len: 4 }], 3, kvh, d), /does not fit/);
  });

  it('leftPaddedMask masks each row’s padding and keeps its past and new slots', () => {
    assert.deepEqual(
      Array.from(leftPaddedMask([2, 4, 1], 4, 1), Number),
      [0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1],
    );
  });
});

describe('StepBatcher', () => {
  const V = 3;
  const H = 2;
  /** Fake decoder: logits row = [seq, token ?? -1, position], hidden row = [seq, seq]. */
  function fake() {
    const calls: StepRow[][] = [];
    let fail = false;
    const run = async (rows: StepRow[]) => {
      calls.push(rows);
      await new Promise((r) => setTimeout(r, 5));
      if (fail) throw new Error('boom');
      return {
        logits: Float32Array.from(rows.flatMap((r) => [r.seq, r.tokenId ?? -1, r.position])),
        hidden: Float32Array.from(rows.flatMap((r) => [r.seq, r.seq])),
      };
    };
    return { calls, run, setFail: (f: boolean) => (fail = f) };
  }

  it('rows submitted in the same turn share one call, sorted by sequence; each gets its own row back', async () => {
    const f = fake();
    const b = new StepBatcher(f.run, V, H, 8);
    const [r3, r1, r2] = await Promise.all([
      b.step({ seq: 3, tokenId: 7, position: 10 }),
      b.step({ seq: 1, tokenId: null, position: 4 }),
      b.step({ seq: 2, tokenId: 5, position: 8 }),
    ]);
    assert.equal(f.calls.length, 1);
    assert.deepEqual(
      f.calls[0].map((r) => r.seq),
      [1, 2, 3],
    );
    assert.deepEqual(Array.from(r1.logits!), [1, -1, 4]);
    assert.deepEqual(Array.from(r2.logits!), [2, 5, 8]);
    assert.deepEqual(Array.from(r3.logits!), [3, 7, 10]);
    assert.deepEqual(Array.from(r3.hidden), [3, 3]);
    assert.deepEqual(b.stats, { calls: 1, rows: 3, maxRows: 3, ranAhead: 0, maxAheadDepth: 0, fedAhead: 0 });
  });

  it('a row submitted while a call runs waits for the next call; loops that continue join it', async () => {
    const f = fake();
    const b = new StepBatcher(f.run, V, H, 8);
    const loop = async (seq: number, steps: number) => {
      for (let i = 0; i < steps; i++) await b.step({ seq, tokenId: i, position: i });
    };
    const first = loop(1, 3);
    await new Promise((r) => setTimeout(r, 1)); // the first call is running
    await Promise.all([first, loop(2, 2)]);
    assert.deepEqual(
      f.calls.map((c) => c.map((r) => r.seq)),
      [[1], [1, 2], [1, 2]],
    );
  });

  it('caps a call at maxBatchSize rows and rejects every row of a failed call', async () => {
    const f = fake();
    const b = new StepBatcher(f.run, V, H, 2);
    await Promise.all([1, 2, 3].map((seq) => b.step({ seq, tokenId: 0, position: 0 })));
    assert.deepEqual(
      f.calls.map((c) => c.length),
      [2, 1],
    );
    f.setFail(true);
    const results = await Promise.allSettled([4, 5].map((seq) => b.step({ seq, tokenId: 0, position: 0 })));
    assert.deepEqual(
      results.map((r) => r.status),
      ['rejected', 'rejected'],
    );
    f.setFail(false);
    assert.deepEqual(Array.from((await b.step({ seq: 6, tokenId: 1, position: 2 })).logits!), [6, 1, 2]);
  });
});

describe('PrefillBatcher', () => {
  const V = 3;
  const H = 2;
  const prompt = (seq: number, length: number): PrefillRequest => ({
    seq,
    inputIds: new BigInt64Array(length),
    imagePadId: 0,
    positions: new BigInt64Array(3 * length),
  });
  /** Worker stand-in: row k's logits are [seq, length, k] and its hidden state [seq, calls]; `bad` seqs fail a call. */
  function fakeWorker(bad = new Set<number>()) {
    const calls: number[][] = [];
    const run = async (reqs: PrefillRequest[]) => {
      calls.push(reqs.map((r) => r.seq));
      if (reqs.some((r) => bad.has(r.seq))) throw new Error('bad prompt');
      return {
        logits: Float32Array.from(reqs.flatMap((r, k) => [r.seq, r.inputIds.length, k])),
        hidden: Float32Array.from(reqs.flatMap((r) => [r.seq, calls.length])),
      };
    };
    return { calls, run };
  }

  it('prompts submitted together share a call within the position budget, in arrival order', async () => {
    const w = fakeWorker();
    const batcher = new PrefillBatcher(w.run, V, H, 12);
    // 3 prompts x longest 4 = 12 fit; the fourth (x4 = 16) starts the next call with the fifth.
    const lengths = [4, 2, 3, 4, 1];
    const out = await Promise.all(lengths.map((len, i) => batcher.prefill(prompt(i + 1, len))));
    assert.deepEqual(w.calls, [
      [1, 2, 3],
      [4, 5],
    ]);
    out.forEach((r, i) => {
      const k = i < 3 ? i : i - 3;
      assert.deepEqual(Array.from(r.logits!), [i + 1, lengths[i], k]);
      assert.deepEqual(Array.from(r.hidden), [i + 1, i < 3 ? 1 : 2]);
    });
    assert.deepEqual(batcher.stats, { calls: 2, prompts: 5, maxPrompts: 3, logitsLeftOut: 0 });
    // A prompt longer than the budget still runs, alone.
    assert.deepEqual(Array.from((await batcher.prefill(prompt(9, 20))).logits!), [9, 20, 0]);
  });

  it('rows whose logits the worker left out resolve with their top candidates only, and are counted', async () => {
    // The worker sent row 1's logits only; every row has its two top candidates.
    const run = async (reqs: PrefillRequest[]) => ({
      logits: Float32Array.from([7, 8, 9]),
      logitRows: Int32Array.from([-1, 0, -1]),
      hidden: Float32Array.from(reqs.flatMap((r) => [r.seq, 0])),
      top: { k: 2, ids: Int32Array.from([1, 2, 0, 2, 2, 1]), values: Float32Array.from([5, 4, 9, 8, 3, 1]) },
    });
    const batcher = new PrefillBatcher(run, V, H, 100);
    const out = await Promise.all([1, 2, 3].map((seq) => batcher.prefill(prompt(seq, 2))));
    assert.deepEqual(
      out.map((r) => r.logits && Array.from(r.logits)),
      [undefined, [7, 8, 9], undefined],
    );
    assert.deepEqual(
      out.map((r) => Array.from(r.top!.ids)),
      [
        [1, 2],
        [0, 2],
        [2, 1],
      ],
    );
    assert.deepEqual(Array.from(out[2].top!.values), [3, 1]);
    assert.deepEqual(Array.from(out[2].hidden), [3, 0]);
    assert.equal(batcher.stats.logitsLeftOut, 2);
  });

  it('a prompt submitted while a call runs goes in the next call', async () => {
    const w = fakeWorker();
    const batcher = new PrefillBatcher(w.run, V, H, 100);
    const first = batcher.prefill(prompt(1, 2));
    await new Promise((r) => setImmediate(r));
    const late = [batcher.prefill(prompt(2, 2)), batcher.prefill(prompt(3, 2))];
    await Promise.all([first, ...late]);
    assert.deepEqual(w.calls, [[1], [2, 3]]);
  });

  it('a failed call is retried prompt by prompt: only the bad prompt fails', async () => {
    const w = fakeWorker(new Set([2]));
    const batcher = new PrefillBatcher(w.run, V, H, 100);
    const results = await Promise.allSettled([1, 2, 3].map((seq) => batcher.prefill(prompt(seq, 2))));
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected', 'fulfilled'],
    );
    assert.match(String((results[1] as PromiseRejectedResult).reason), /bad prompt/);
    assert.deepEqual(w.calls, [[1, 2, 3], [1], [2], [3]]);
  });
});

describe('FusedKvSlots', () => {
  it('claims the lowest free slots as runs of consecutive slots, all or none', () => {
    const slots = new FusedKvSlots(6, 10);
    assert.deepEqual(slots.claimRuns([1, 2, 3, 4].map((seq) => ({ seq, length: seq }))), [
      { first: 0, members: [0, 1, 2, 3] },
    ]);
    slots.release(2);
    slots.release(3);
    // free: 1, 2, 4, 5 -> two runs
    assert.deepEqual(
      slots.claimRuns([
        { seq: 7, length: 1 },
        { seq: 8, length: 1 },
        { seq: 9, length: 1 },
      ]),
      [
        { first: 1, members: [0, 1] },
        { first: 4, members: [2] },
      ],
    );
    assert.equal(slots.slot(9), 4);
    assert.throws(
      () =>
        slots.claimRuns([
          { seq: 10, length: 1 },
          { seq: 11, length: 1 },
        ]),
      /all 6 KV slots/,
    );
    assert.throws(() => slots.claimRuns([{ seq: 12, length: 11 }]), /exceeds the KV capacity 10/);
    assert.throws(() => slots.claimRuns([{ seq: 1, length: 1 }]), /already exists/);
    // nothing was claimed by the refused calls: one slot is still free
    assert.deepEqual(slots.claimRuns([{ seq: 13, length: 2 }]), [{ first: 5, members: [0] }]);
  });
});

describe('Slots and Channel', () => {
  it('Slots: FIFO grants; an aborted waiter gives up without taking a slot', async () => {
    const s = new Slots(1);
    assert.equal(await s.acquire(), true);
    const order: string[] = [];
    const ctrl = new AbortController();
    const a = s.acquire(ctrl.signal).then((ok) => order.push(`a:${ok}`));
    const b = s.acquire().then((ok) => order.push(`b:${ok}`));
    ctrl.abort();
    await a;
    s.release();
    await b;
    assert.deepEqual(order, ['a:false', 'b:true']);
    const c = s.acquire().then(() => order.push('c'));
    await new Promise((r) => setTimeout(r, 1));
    assert.equal(order.length, 2, 'c waits for b to release');
    s.release();
    await c;
    assert.equal(await s.acquire(AbortSignal.abort()), false);
  });

  it('Channel: items pushed before and after the reader waits arrive in order; fail ends with the error', async () => {
    const ch = new Channel<number>();
    ch.push(1);
    const got: number[] = [];
    const reader = (async () => {
      for await (const x of ch) got.push(x);
    })();
    await new Promise((r) => setTimeout(r, 1));
    ch.push(2);
    ch.push(3);
    ch.close();
    await reader;
    assert.deepEqual(got, [1, 2, 3]);
    const bad = new Channel<number>();
    bad.push(1);
    bad.fail(new Error('x'));
    const seen: number[] = [];
    await assert.rejects(async () => {
      for await (const x of bad) seen.push(x);
    }, /x/);
    assert.deepEqual(seen, [1]);
  });
});
