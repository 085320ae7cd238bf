import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Channel, Slots, StepBatcher } from '../src/decoding/batcher';
import { leftPaddedMask, packRows } from '../src/runtime/kv-batch';
import type { StepRow } from '../src/runtime/protocol';

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
    assert.deepEqual(b.stats, { calls: 1, rows: 3, maxRows: 3 });
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
