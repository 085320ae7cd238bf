import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { decodeLoop, type ModelStepper, type StepResult } from '../src/decoding/loop';
import { greedyFromTop, pickableFromTop, pickToken, SeededRandom } from '../src/sampling/sampler';
import { Tokenizer } from '../src/tokenizer';
import type { SamplingParams } from '../src/types';

// Greedy picks from a row's top candidates (what the fused decoder sends instead of the whole logits row) must be
// the picks of the whole row, or say they cannot decide.

function topOf(logits: Float32Array, k: number): { ids: Int32Array; values: Float32Array } {
  const ids = Array.from(logits.keys())
    .sort((a, b) => logits[b] - logits[a] || a - b)
    .slice(0, k);
  return { ids: Int32Array.from(ids), values: Float32Array.from(ids, (i) => logits[i]) };
}

function random(seed: number): () => number {
  const rng = new SeededRandom(seed);
  return () => rng.next();
}

describe('greedy pick from the top candidates', () => {
  it('equals pickToken on the whole row whenever it decides, over random rows, histories and penalties', () => {
    const next = random(7);
    let decided = 0;
    let undecided = 0;
    for (let c = 0; c < 400; c++) {
      const vocab = 200;
      // Flat rows make the penalties reorder the top often; some rows have ties.
      const logits = Float32Array.from(
        { length: vocab },
        () => Math.round((next() * 4 - 2) * (c % 3 ? 100 : 4)) / 4,
      );
      const history = Array.from({ length: Math.floor(next() * 600) }, () => Math.floor(next() * vocab));
      const generated = new Map<number, number>();
      for (const id of history.slice(-10)) generated.set(id, (generated.get(id) ?? 0) + 1);
      const params: SamplingParams = {
        temperature: 0,
        repetitionPenalty: [1, 1.05, 2, 50][c % 4],
        presencePenalty: c % 5 === 0 ? 0.5 : 0,
        frequencyPenalty: c % 7 === 0 ? 0.25 : 0,
      };
      assert.ok(pickableFromTop(params, undefined));
      const { ids, values } = topOf(logits, 16);
      const fromTop = greedyFromTop(ids, values, history, params, generated);
      const whole = pickToken(Float32Array.from(logits), history, params, new SeededRandom(1), generated);
      if (fromTop === undefined) undecided++;
      else {
        decided++;
        assert.equal(fromTop, whole, `case ${c}`);
      }
    }
    assert.ok(decided > 100 && undecided > 10, `both outcomes occur: ${decided} decided, ${undecided} not`);
  });

  it('is only used for greedy rows without logprobs and adjustments that could raise a logit', () => {
    assert.equal(pickableFromTop({ temperature: 0 }, undefined), true);
    assert.equal(pickableFromTop({ temperature: 0 }, 2), false);
    assert.equal(pickableFromTop({ temperature: 0.7 }, undefined), false);
    assert.equal(pickableFromTop({ temperature: 0, logitBias: { 5: 3 } }, undefined), false);
    assert.equal(pickableFromTop({ temperature: 0, repetitionPenalty: 0.9 }, undefined), false);
    assert.equal(pickableFromTop({ temperature: 0, presencePenalty: -0.5 }, undefined), false);
    assert.equal(pickableFromTop({ topK: 1, temperature: 0.9 }, undefined), true);
  });

  it('the decode loop reads the whole row when the top candidates do not decide', async () => {
    const tokenizer = Tokenizer.fromJSON(
      fs.readFileSync(path.resolve(__dirname, '../../../models/lvr-tiny-demo/tokenizer.json'), 'utf8'),
    );
    const vocab = 151936;
    // Every step: token 300 is the best, 301..304 next; the prompt holds 300..303, so with a repetition penalty of 2
    // the top 4 (all seen) fall below the 4th value and the winner lies outside the candidates: 304 first, then
    // (304 seen too: 9.6 / 2 < 10 / 2) 300.
    const row = (): Float32Array => {
      const l = new Float32Array(vocab);
      [300, 301, 302, 303, 304].forEach((id, i) => (l[id] = 10 - i * 0.1));
      return l;
    };
    let reads = 0;
    const step = async (): Promise<StepResult> => ({
      hidden: new Float32Array(4),
      top: { k: 4, ...topOf(row(), 4) },
    });
    const stepper: ModelStepper = {
      prefill: async () => ({ logits: row(), hidden: new Float32Array(4) }),
      step,
      lastLogits: async () => {
        reads++;
        return row();
      },
    };
    const ids: number[] = [];
    for await (const d of decodeLoop(stepper, {
      promptIds: [300, 301, 302, 303],
      ropeDelta: 0,
      imageTokens: 0,
      sampling: { temperature: 0, repetitionPenalty: 2, maxTokens: 3, ignoreEos: true },
      lvr: {
        strategy: 'steps',
        steps: 2,
        criterion: 'mse',
        threshold: 0.02,
        upstreamCompat: false,
        lvrStartId: 151665,
        lvrEndId: 151668,
      },
      eosIds: [],
      tokenizer,
      toFloat32: (h) => h as Float32Array,
    }))
      ids.push(...d.tokenIds);
    assert.deepEqual(ids, [304, 300, 300]);
    assert.equal(reads, 2, 'the two decode steps read their whole rows');
  });
});
