import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { decodeLoop, type ModelStepper, type StepResult } from '../src/decoding/loop';
import type { LvrConfig } from '../src/decoding/lvr-state';
import { Tokenizer } from '../src/tokenizer';
import type { GenerationDelta, SamplingParams } from '../src/types';

// The decode loop over a scripted model (greedy picks a fixed token sequence) and the real Qwen2.5 + LVR tokenizer.
const BUNDLE = path.resolve(__dirname, '../../../models/lvr-tiny-demo');
const tokenizer = Tokenizer.fromJSON(fs.readFileSync(path.join(BUNDLE, 'tokenizer.json'), 'utf8'));
const VOCAB = 151936;
const LVR_START = 151665;
const LVR_END = 151668;
const IM_END = 151645;

/** Id of the token made of exactly these bytes (byte-level BPE has one for every single byte). */
function idOfBytes(bytes: number[]): number {
  for (let id = 0; id < 151643; id++) {
    const b = tokenizer.tokenBytes(id);
    if (b.length === bytes.length && b.every((x, i) => x === bytes[i])) return id;
  }
  throw new Error(`no token for bytes ${bytes}`);
}
const idOf = (text: string): number => {
  const ids = tokenizer.encode(text);
  assert.equal(ids.length, 1, `${JSON.stringify(text)} is one token`);
  return ids[0];
};

/** A model whose greedy pick at forward k is `script[k]`. */
function scripted(script: number[]): ModelStepper {
  let k = 0;
  const next = (): StepResult => {
    const logits = new Float32Array(VOCAB);
    logits[script[Math.min(k++, script.length - 1)]] = 10;
    return { logits, hidden: new Float32Array(4) };
  };
  return { prefill: async () => next(), step: async () => next() };
}

const lvr: LvrConfig = {
  strategy: 'steps',
  steps: 2,
  criterion: 'mse',
  threshold: 0.02,
  upstreamCompat: false,
  lvrStartId: LVR_START,
  lvrEndId: LVR_END,
};

async function run(
  script: number[],
  sampling: Partial<SamplingParams> = {},
  promptIds = [idOf('Hi'), LVR_START],
): Promise<GenerationDelta[]> {
  const out: GenerationDelta[] = [];
  for await (const d of decodeLoop(scripted(script), {
    promptIds,
    ropeDelta: 0,
    imageTokens: 0,
    sampling: { temperature: 0, maxTokens: 32, ...sampling },
    lvr,
    eosIds: [IM_END],
    tokenizer,
    toFloat32: (h) => h as Float32Array,
  }))
    out.push(d);
  return out;
}

const visible = (ds: GenerationDelta[]) =>
  ds
    .filter((d) => !d.latent)
    .map((d) => d.text)
    .join('');

describe('decode loop: latent placeholders are kept apart from the visible text', () => {
  const X = idOf('x');
  const A = idOf('A');
  const LEAD = idOfBytes([0xe6]); // first byte of 数 (e6 95 b0): an incomplete UTF-8 sequence on its own
  const REST = idOfBytes([0x95]);
  const LAST = idOfBytes([0xb0]);

  it("a placeholder's held-back bytes never come out in the next visible delta", async () => {
    // <|lvr_start|> ends the prompt: the first two picks are placeholders (2 latent steps), then text.
    const ds = await run([X, LEAD, A, IM_END]);
    assert.deepEqual(
      ds.map((d) => d.latent),
      [true, true, false, false],
    );
    assert.equal(visible(ds), 'A');
    assert.equal(ds[1].text, '\ufffd', 'the placeholder decodes on its own (incomplete byte -> U+FFFD)');
    assert.equal(ds.at(-1)!.finishReason, 'stop');
  });

  it('a visible character split around a latent block is decoded from the visible bytes only', async () => {
    const ds = await run([LEAD, LVR_START, X, X, REST, LAST, IM_END], {}, [idOf('Hi')]);
    assert.deepEqual(
      ds.map((d) => d.latent),
      [false, false, true, true, false, false, false],
    );
    // Visible ids e6, <|lvr_start|> (special: skipped), 95, b0: the character survives the latent block.
    assert.equal(visible(ds), '数');
    assert.ok(
      ds.filter((d) => d.latent).every((d) => d.text === 'x'),
      'placeholder texts are their own',
    );
  });

  it("a stop string equal to a placeholder's text does not end a latent block", async () => {
    const ds = await run([X, X, A, X, IM_END], { stop: ['x'] });
    assert.deepEqual(
      ds.map((d) => [d.latent, d.finishReason]),
      [
        [true, null],
        [true, null],
        [false, null],
        [false, 'stop'],
      ],
    );
    assert.equal(ds.at(-1)!.stopReason, 'x', 'the stop string still matches visible text');
    assert.equal(visible(ds), 'A');
  });

  it('max_tokens reached inside a latent block: the held visible bytes end up in a final visible delta', async () => {
    const ds = await run([LEAD, LVR_START, X, X, A], { maxTokens: 3 }, [idOf('Hi')]);
    assert.deepEqual(
      ds.map((d) => [d.latent, d.tokenIds.length, d.finishReason]),
      [
        [false, 1, null],
        [false, 1, null],
        [true, 1, null],
        [false, 0, 'length'],
      ],
    );
    assert.equal(ds[2].text, 'x');
    assert.equal(visible(ds), '\ufffd', 'the incomplete visible byte is flushed as visible text');
    assert.equal(ds.at(-1)!.usage!.completionTokens, 3);
  });
});
