import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LvrStateMachine, LvrConfig } from '../src/decoding/lvr-state';
import { StopStringMatcher } from '../src/decoding/stop';
import {
  applyOccurrencePenalties,
  applyRepetitionPenalty,
  pickToken,
  SeededRandom,
} from '../src/sampling/sampler';

const START = 10;
const END = 11;
const cfg = (over: Partial<LvrConfig> = {}): LvrConfig => ({
  strategy: 'steps',
  steps: 3,
  criterion: 'mse',
  threshold: 0.02,
  upstreamCompat: false,
  lvrStartId: START,
  lvrEndId: END,
  ...over,
});

describe('LVR state machine (LVR-SPEC §4.2-4.4)', () => {
  it('steps: exactly N latent inputs after <|lvr_start|> is fed, then text', () => {
    const sm = new LvrStateMachine(cfg());
    // forward whose input is <|lvr_start|> turns mode on; then N-1 more latent forwards keep it on.
    assert.equal(sm.update(5, 7), false);
    assert.equal(sm.update(START, 1), true);
    assert.equal(sm.update(1, 2), true);
    assert.equal(sm.update(2, 3), true);
    assert.equal(sm.update(3, 4), false);
    assert.equal(sm.update(4, START), false);
    assert.equal(sm.update(START, 1), true); // re-entry
  });

  it('end_token: exits on a sampled <|lvr_end|>, capped at N unless upstreamCompat', () => {
    const sm = new LvrStateMachine(cfg({ strategy: 'end_token' }));
    assert.equal(sm.update(START, 1), true);
    assert.equal(sm.update(1, END), false);
    const capped = new LvrStateMachine(cfg({ strategy: 'end_token', steps: 2 }));
    assert.deepEqual(
      [capped.update(START, 1), capped.update(1, 2), capped.update(2, 3)],
      [true, true, false],
    );
    const compat = new LvrStateMachine(cfg({ strategy: 'end_token', steps: 2, upstreamCompat: true }));
    assert.deepEqual(
      [compat.update(START, 1), compat.update(1, 2), compat.update(2, 3), compat.update(3, 4)],
      [true, true, true, true],
    );
  });

  it('latent: exits when the fed latent reaches the end vector or the cap', () => {
    const sm = new LvrStateMachine(cfg({ strategy: 'latent', steps: 5 }));
    assert.equal(sm.update(START, 1), true);
    assert.equal(sm.update(1, 2, false), true);
    assert.equal(sm.update(2, 3, true), false);
  });

  it('latent: the state machine measures the fed latent against the end vector itself', () => {
    const end = Float32Array.from([1, 0, 0, 0]);
    const far = Float32Array.from([0, 1, 0, 0]);
    const near = Float32Array.from([1, 0.1, 0, 0]);
    const sm = new LvrStateMachine(cfg({ strategy: 'latent', steps: 5, threshold: 0.02 }), end);
    assert.equal(sm.reachedLatentEnd(far), false);
    assert.equal(sm.reachedLatentEnd(near), true);
    assert.equal(sm.afterForward(START, 1, undefined), true);
    assert.equal(sm.afterForward(1, 2, far), true);
    assert.equal(sm.afterForward(2, 3, near), false);
    const steps = new LvrStateMachine(cfg({ strategy: 'steps' }), end);
    assert.equal(steps.reachedLatentEnd(near), false, 'only the latent strategy ends on the vector');
  });

  it('forecast foresees the next modes as far as no pick or latent to come can change them, without changing the state', () => {
    const end = Float32Array.from([1, 0, 0, 0]);
    const far = Float32Array.from([0, 1, 0, 0]);
    const near = Float32Array.from([1, 0.1, 0, 0]);
    // [input token, picked token, fed latent] per forward: text, a block, text, a second block
    const run: Array<[number, number, Float32Array | undefined]> = [
      [5, START, undefined],
      [START, 1, far],
      [1, 2, far],
      [2, END, near],
      [3, 4, far],
      [4, START, far],
      [START, 1, far],
      [1, 2, far],
      [2, 3, far],
      [3, 4, far],
    ];
    for (const strategy of ['none', 'steps', 'latent', 'end_token'] as const) {
      const sm = new LvrStateMachine(cfg({ strategy, steps: 3 }), end);
      const forecasts: boolean[][] = [];
      const modes: boolean[] = [];
      for (const [tokIn, tok, fed] of run) {
        const forecast = sm.forecast(tokIn, fed, 2);
        assert.deepEqual(sm.forecast(tokIn, fed, 2), forecast, `${strategy}: forecast is repeatable`);
        forecasts.push(forecast);
        modes.push(sm.afterForward(tokIn, tok, fed));
      }
      forecasts.forEach((f, i) =>
        f.forEach((mode, k) => {
          if (i + k < modes.length) assert.equal(mode, modes[i + k], `${strategy}: forecast ${i}+${k}`);
        }),
      );
      const firstKnown = forecasts.map((f) => f.length > 0);
      // Only end_token's in-block steps depend on the pick (a sampled <|lvr_end|> closes the block).
      if (strategy === 'end_token') assert.ok(firstKnown.includes(false) && firstKnown.includes(true));
      else assert.ok(firstKnown.every(Boolean), strategy);
      if (strategy === 'none') assert.ok(forecasts.every((f) => f.length === 2 && !f[0] && !f[1]));
      if (strategy === 'steps')
        assert.ok(
          forecasts.some((f) => f.length === 2 && f[0] && !f[1]),
          'steps: a block’s end is foreseen two forwards ahead',
        );
    }
  });
});

describe('sampling', () => {
  it('repetition penalty divides positive and multiplies negative logits once per id (float32)', () => {
    const x = Float32Array.from([2, -2, 1]);
    applyRepetitionPenalty(x, [0, 0, 1], 2);
    assert.deepEqual(Array.from(x), [1, -4, 1]);
  });

  it('greedy picks the argmax of penalised logits; seeded sampling is reproducible and respects top-k', () => {
    assert.equal(
      pickToken(
        Float32Array.from([1, 3, 2.9]),
        [1],
        { temperature: 0, repetitionPenalty: 1.1 },
        new SeededRandom(1),
      ),
      2,
    );
    const draw = (seed: number) =>
      Array.from({ length: 20 }, () =>
        pickToken(Float32Array.from([1, 1, 1, -5]), [], { temperature: 1, topK: 2 }, new SeededRandom(seed)),
      );
    assert.deepEqual(draw(3), draw(3));
    assert.ok(draw(4).every((t) => t === 0 || t === 1));
    const r = new SeededRandom(5);
    const seen = new Set(
      Array.from({ length: 200 }, () =>
        pickToken(Float32Array.from([5, 4.9, -9]), [], { temperature: 1, minP: 0.5 }, r),
      ),
    );
    assert.deepEqual([...seen].sort(), [0, 1]);
  });
});

describe('logit bias, presence and frequency penalties (OpenAI/vLLM semantics)', () => {
  it('presence subtracts once per generated id, frequency once per occurrence; prompt ids are not penalised', () => {
    const x = Float32Array.from([1, 1, 1, 1]);
    applyOccurrencePenalties(
      x,
      new Map([
        [0, 2],
        [1, 1],
      ]),
      0.5,
      0.25,
    );
    assert.deepEqual(Array.from(x), [0, 0.25, 1, 1]);
    // Greedy: id 2 and 3 tie at 1 after the penalties (history = prompt ids has no effect without repetition penalty).
    const pick = pickToken(
      Float32Array.from([3, 2.9, 1, 0]),
      [0, 1, 2],
      { temperature: 0, presencePenalty: 1, frequencyPenalty: 1 },
      new SeededRandom(1),
      new Map([[0, 1]]),
    );
    assert.equal(pick, 1, 'id 0 (generated once) falls to 1, below id 1 (only in the prompt)');
    const negative = Float32Array.from([0, 0]);
    applyOccurrencePenalties(negative, new Map([[1, 3]]), -1, -0.5);
    assert.deepEqual(Array.from(negative), [0, 2.5], 'negative penalties encourage repetition');
  });

  it('logit_bias is added before sampling: +100 forces an id, -100 bans the argmax', () => {
    const logits = () => Float32Array.from([5, 1, 0, -2]);
    const greedy = { temperature: 0 };
    assert.equal(pickToken(logits(), [], { ...greedy, logitBias: { 3: 100 } }, new SeededRandom(1)), 3);
    assert.equal(pickToken(logits(), [], { ...greedy, logitBias: { 0: -100 } }, new SeededRandom(1)), 1);
    const sampled = Array.from({ length: 50 }, (_, i) =>
      pickToken(logits(), [], { temperature: 1, logitBias: { 0: -100, 1: -100 } }, new SeededRandom(i)),
    );
    assert.ok(sampled.every((t) => t === 2 || t === 3) && sampled.includes(2));
  });
});

describe('stop strings', () => {
  it('holds back partial matches and cuts the stop string out', () => {
    const m = new StopStringMatcher(['END']);
    assert.deepEqual(m.push('abc E'), { text: 'abc' });
    assert.deepEqual(m.push('N'), { text: ' ' });
    assert.deepEqual(m.push('Dxyz'), { text: '', stop: 'END' });
    const n = new StopStringMatcher(['###']);
    assert.equal(n.push('a#').text + n.push('b').text + n.flush(), 'a#b');
  });
});
