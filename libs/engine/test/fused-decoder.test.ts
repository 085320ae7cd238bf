import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LvrEngine } from '../src';
import { FusedNativeDecoder } from '../src/runtime/fused-native';
import { assertSameOutcomes, concurrentRequests } from './helpers/concurrent-parity';
import { REPO_ROOT, runPython, tempDir } from './helpers/python';

// The fused decoder (graphs.decoder_fused through the native addon, KV slots shared by past and present) on the CPU
// EP against onnxruntime-node's plain decoder on the same bundle: greedy outputs must be token-identical.

describe('engine: fused decoder through the native addon (CPU EP)', () => {
  let dir: string;
  let bundle: string;
  let plain: LvrEngine;
  let fused: LvrEngine;

  before(async () => {
    execFileSync(process.execPath, [path.join(REPO_ROOT, 'libs/engine/native/build.mjs')], {
      stdio: 'inherit',
    });
    dir = tempDir('lvr-fused-');
    bundle = path.join(dir, 'bundle');
    const res = runPython<{ verification: { passed: boolean } }>('fused_bundle.py', { dest: bundle });
    assert.equal(res.verification.passed, true);
    plain = await LvrEngine.load(bundle, {
      threads: 1,
      verifyChecksums: false,
      maxBatchSize: 3,
      maxModelLen: 512,
    });
    fused = await LvrEngine.load(bundle, {
      threads: 1,
      verifyChecksums: false,
      maxBatchSize: 3,
      maxModelLen: 512,
      fusedDecoder: true,
    });
  });

  after(async () => {
    await plain?.close();
    await fused?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('concurrent requests (joins, leaves, a cancellation, latent steps, an image) give the plain decoder’s tokens', async () => {
    await assertSameOutcomes(plain, fused, await concurrentRequests());
    assert.ok(fused.batchStats.maxRows > 1, 'requests were batched in the fused slots');
  });

  it('with an LVR head (its state fed back through the host, its logits replacing the decoder’s)', async () => {
    const headBundle = path.join(dir, 'head');
    const res = runPython<{ verification: { passed: boolean } }>('fused_bundle.py', {
      dest: headBundle,
      head: true,
    });
    assert.equal(res.verification.passed, true);
    const options = { threads: 1, verifyChecksums: false, maxBatchSize: 3, maxModelLen: 512 };
    const [want, got] = await Promise.all([
      LvrEngine.load(headBundle, options),
      LvrEngine.load(headBundle, { ...options, fusedDecoder: true }),
    ]);
    try {
      await assertSameOutcomes(want, got, await concurrentRequests());
    } finally {
      await Promise.all([want.close(), got.close()]);
    }
  });

  it('a bundle without graphs.decoder_fused is refused when the fused decoder is asked for', async () => {
    await assert.rejects(
      LvrEngine.load(path.join(REPO_ROOT, 'models/lvr-tiny-demo'), {
        verifyChecksums: false,
        fusedDecoder: true,
      }),
      /--fused-decoder/,
    );
  });

  it('the addon refuses inputs that do not fit, before running anything', () => {
    const m = JSON.parse(fs.readFileSync(path.join(bundle, 'manifest.json'), 'utf8'));
    const a = m.architecture;
    const dec = FusedNativeDecoder.open({
      model: path.join(bundle, 'decoder_fused.onnx'),
      gpu: false,
      batch: 2,
      capacity: 8,
      layers: a.num_hidden_layers,
      kvHeads: a.num_key_value_heads,
      headDim: a.head_dim,
      hidden: a.hidden_size,
      vocab: a.vocab_size,
      fp16: false,
    });
    const H = a.hidden_size;
    const pos = (n: number) => BigInt64Array.from({ length: 3 * n }, (_, i) => BigInt(i % n));
    assert.throws(() => dec.forward(0, new Float32Array(9 * H), pos(9), 0), /exceeds the KV capacity/);
    assert.throws(() => dec.forward(2, new Float32Array(H), pos(1), 0), /row out of range/);
    assert.throws(() => dec.forward(0, new Float32Array(H + 1), pos(1), 0), /embeds holds/);
    const seqlens = Int32Array.from([8, 0]);
    assert.throws(() => dec.step(new Float32Array(2 * H), null, pos(2), seqlens), /exceeds the KV capacity/);
    assert.throws(
      () => dec.step(null, null, pos(2), Int32Array.from([0, 0]), Int32Array.from([2])),
      /out of range/,
    );
    const ok = dec.forward(1, new Float32Array(3 * H).fill(0.1), pos(3), 0);
    assert.equal(ok.logits.length, a.vocab_size);
    assert.ok(ok.logits.every(Number.isFinite));
    // only row 1 comes back, and a latent step of row 1 reads its own hidden state from the prefill
    const step = dec.step(
      new Float32Array(2 * H),
      Uint8Array.from([0, 1]),
      new BigInt64Array(6).fill(3n),
      Int32Array.from([0, 3]),
      Int32Array.from([1]),
    );
    assert.equal(step.logits.length, a.vocab_size);
    const again = dec.forward(1, Float32Array.from(ok.hidden), BigInt64Array.from([3n, 3n, 3n]), 3);
    assert.deepEqual(Array.from(again.logits.slice(0, 32)), Array.from(step.logits.slice(0, 32)));
  });
});
