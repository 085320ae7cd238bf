import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { largest, pickToken, samplingCandidates, SeededRandom } from '../src/sampling/sampler';
import type { SamplingParams } from '../src/types';

/** The textbook definition: sort the whole vocabulary, then top-k, renormalise, top-p, min-p. */
function naiveCandidates(logits: Float32Array, params: SamplingParams): { ids: number[]; probs: number[] } {
  const temperature = Math.max(params.temperature ?? 1, 1e-6);
  const order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a] || a - b);
  const k = params.topK && params.topK > 0 ? Math.min(params.topK, order.length) : order.length;
  const top = order.slice(0, k);
  const max = logits[top[0]] / temperature;
  const weights = top.map((id) => Math.exp(logits[id] / temperature - max));
  const total = weights.reduce((a, b) => a + b, 0);
  const probs = weights.map((w) => w / total);
  let keep = probs.length;
  if ((params.topP ?? 1) < 1) {
    let cum = 0;
    keep = 0;
    while (keep < probs.length && cum < (params.topP ?? 1)) cum += probs[keep++];
  }
  if ((params.minP ?? 0) > 0) {
    while (keep > 1 && probs[keep - 1] < probs[0] * (params.minP ?? 0)) keep--;
  }
  return { ids: top.slice(0, keep), probs: probs.slice(0, keep) };
}

function randomLogits(rng: SeededRandom, vocab: number, quantised: boolean): Float32Array {
  const logits = new Float32Array(vocab);
  for (let i = 0; i < vocab; i++) {
    const v = (rng.next() - 0.5) * 16;
    logits[i] = quantised ? Math.round(v) : v; // quantised logits make many ties
  }
  return logits;
}

describe('sampling candidates by selection', () => {
  test('largest(n) is the prefix of a stable descending sort, ties by lower id', () => {
    const rng = new SeededRandom(3);
    for (let trial = 0; trial < 200; trial++) {
      const logits = randomLogits(rng, 1 + Math.floor(rng.next() * 3000), trial % 2 === 0);
      const n = 1 + Math.floor(rng.next() * logits.length);
      const full = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a] || a - b);
      assert.deepEqual(largest(logits, n), full.slice(0, n), `trial ${trial}, n=${n}`);
    }
  });

  test('the kept tokens and their probabilities equal the full-sort definition', () => {
    const rng = new SeededRandom(11);
    const settings: SamplingParams[] = [
      { temperature: 1 },
      { temperature: 0.7, topP: 0.9 },
      { temperature: 1.3, topK: 50 },
      { temperature: 1, topK: 40, topP: 0.5 },
      { temperature: 0.5, minP: 0.05 },
      { temperature: 1, topP: 0.95, minP: 0.1 },
      { temperature: 2, topK: 1000, topP: 0.99, minP: 0.01 },
      { temperature: 1, topP: 0.999999 },
    ];
    for (let trial = 0; trial < 120; trial++) {
      const params = settings[trial % settings.length];
      const logits = randomLogits(rng, 5000 + Math.floor(rng.next() * 5000), trial % 3 === 0);
      const want = naiveCandidates(logits, params);
      const got = samplingCandidates(logits, params);
      const label = `trial ${trial} ${JSON.stringify(params)}`;
      // With a top-p cut the order matters (it decides the cut) and is most-likely-first; otherwise only the set does.
      if ((params.topP ?? 1) < 1) assert.deepEqual(got.ids, want.ids, label);
      else
        assert.deepEqual(
          [...got.ids].sort((a, b) => a - b),
          [...want.ids].sort((a, b) => a - b),
          label,
        );
      const scale = got.weights.reduce((a, b) => a + b, 0) / want.probs.reduce((a, b) => a + b, 0);
      const wantProb = new Map(want.ids.map((id, i) => [id, want.probs[i]]));
      got.ids.forEach((id, i) =>
        assert.ok(Math.abs(got.weights[i] / scale - wantProb.get(id)!) < 1e-9, label),
      );
    }
  });
});

/** Frequency of each id over many seeded draws. */
function drawCounts(
  logits: Float32Array,
  params: SamplingParams,
  seed: number,
  draws: number,
): Map<number, number> {
  const rng = new SeededRandom(seed);
  const counts = new Map<number, number>();
  for (let i = 0; i < draws; i++) {
    const id = pickToken(Float32Array.from(logits), [], params, rng);
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

test('sampling follows the distribution (a seeded draw lands on each candidate in proportion)', () => {
  const draws = 20000;
  const counts = drawCounts(new Float32Array([2, 1, 0, -1, -30]), { temperature: 1, topP: 0.95 }, 5, draws);
  const weights = [2, 1, 0].map((v) => Math.exp(v));
  const total = weights.reduce((a, b) => a + b, 0);
  // top-p 0.95 keeps ids 0, 1, 2 (cumulative 0.644, 0.881, 0.968); id 3 and the -30 logit never come.
  assert.deepEqual([...counts.keys()].sort(), [0, 1, 2]);
  weights.forEach((w, id) => assert.ok(Math.abs(counts.get(id)! / draws - w / total) < 0.02, `id ${id}`));
});

test('temperature-only sampling draws from the whole softmax', () => {
  const draws = 20000;
  const counts = drawCounts(new Float32Array([2, 1, 0, -1, -30]), { temperature: 1 }, 9, draws);
  const weights = [2, 1, 0, -1].map((v) => Math.exp(v));
  const total = weights.reduce((a, b) => a + b, 0);
  assert.equal(counts.get(4) ?? 0, 0, 'a logit 32 below the best is never drawn in 20k tries');
  weights.forEach((w, id) =>
    assert.ok(Math.abs((counts.get(id) ?? 0) / draws - w / total) < 0.02, `id ${id}`),
  );
});
