import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LvrEngine, type GenerationRequest, type SamplingParams } from '../src';
import {
  FUSED_TOP_K,
  FusedNativeDecoder,
  nativeLibraries,
  type FusedDecoderOptions,
  type FusedStepOutput,
  FEED_PICK,
  NO_TOKEN,
  PICK_UNFED,
  type GpuAttentionKernel,
  type NativeLibraries,
} from '../src/runtime/fused-native';
import { greedyFromTop } from '../src/sampling/sampler';
import { assertSameOutcomes, concurrentRequests, generate } from './helpers/concurrent-parity';
import { REPO_ROOT, runPython, tempDir } from './helpers/python';

// The fused decoder (graphs.decoder_fused through the native addon, KV slots shared by past and present) on the CPU
// EP against onnxruntime-node's plain decoder on the same bundle: greedy outputs must be token-identical.

describe('engine: fused decoder through the native addon (CPU EP)', () => {
  let dir: string;
  let bundle: string;
  let plain: LvrEngine;
  let fused: LvrEngine;
  // The fused engine's options; the plain one's leave the fused decoder out.
  const engineOptions = {
    threads: 1,
    verifyChecksums: false,
    maxBatchSize: 3,
    maxModelLen: 512,
    fusedDecoder: true,
  };

  before(async () => {
    execFileSync(process.execPath, [path.join(REPO_ROOT, 'libs/engine/native/build.mjs')], {
      stdio: 'inherit',
    });
    dir = tempDir('lvr-fused-');
    bundle = path.join(dir, 'bundle');
    const res = runPython<{ verification: { passed: boolean } }>('fused_bundle.py', { dest: bundle });
    assert.equal(res.verification.passed, true);
    plain = await LvrEngine.load(bundle, { ...engineOptions, fusedDecoder: false });
    fused = await LvrEngine.load(bundle, engineOptions);
  });

  after(async () => {
    await plain?.close();
    await fused?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('concurrent requests (joins, leaves, a cancellation, latent steps, an image) give the plain decoder’s tokens', async () => {
    await assertSameOutcomes(plain, fused, await concurrentRequests());
    assert.ok(fused.batchStats.maxRows > 1, 'requests were batched in the fused slots');
    assert.ok(fused.prefillStats.maxPrompts > 1, 'prompts of different lengths were prefilled together');
    assert.equal(
      fused.prefillStats.logitsLeftOut,
      fused.prefillStats.prompts - 1,
      'greedy prompts got their first token from their top candidates, the one with logprobs from its logits',
    );
    assert.equal(plain.prefillStats.logitsLeftOut, 0);
    assert.ok(fused.batchStats.ranAhead > 0, 'greedy steps were run ahead and used');
    assert.equal(fused.batchStats.maxAheadDepth, 2, 'a step was started two steps ahead of the engine');
    assert.ok(
      fused.batchStats.ranAhead < fused.batchStats.calls,
      'some steps could not be foreseen (joins, latents)',
    );
  });

  it('the model info names the decoder that runs the steps (no CUDA graph on the CPU EP)', () => {
    assert.equal(plain.info.decoder, 'plain');
    assert.equal(fused.info.decoder, 'fused');
  });

  it('a latent block is foreseen to its end: every decode step after the first ran ahead, as for a text', async () => {
    const before = { ...fused.batchStats };
    const out = await generate(fused, {
      messages: [{ role: 'user', content: 'latent' }],
      sampling: { temperature: 0, ignoreEos: true, maxTokens: 20 },
      assistantPrefix: '<|lvr_start|>',
      lvr: { strategy: 'steps', steps: 8 },
    });
    assert.equal(out.ids.length, 20);
    const calls = fused.batchStats.calls - before.calls;
    assert.equal(calls, 19, 'one request alone: one call per decode step');
    assert.equal(fused.batchStats.ranAhead - before.ranAhead, calls - 1);
    assert.ok(
      fused.batchStats.fedAhead - before.fedAhead > 0,
      'token steps were queued behind the step before, fed its top candidate by the addon',
    );
  });

  it('a latent block’s placeholders count for the repetition penalty of the picks made ahead, as for the engine’s', async () => {
    // The engine counts the tokens it picks inside a block (never fed) as generated: picks made ahead that missed
    // them were wrong after these blocks (found by trying prompts, lengths and penalties on this bundle).
    for (const addonPicks of [true, false]) {
      const engine = addonPicks
        ? fused
        : await LvrEngine.load(bundle, { ...engineOptions, addonPicks: false });
      try {
        for (const steps of [2, 16]) {
          const request: GenerationRequest = {
            messages: [{ role: 'user', content: 'latent' }],
            sampling: { temperature: 0, ignoreEos: true, maxTokens: steps + 6, repetitionPenalty: 1.5 },
            assistantPrefix: '<|lvr_start|>',
            lvr: { strategy: 'steps', steps },
          };
          const before = { ...engine.batchStats };
          const [want, have] = await Promise.all([generate(plain, request), generate(engine, request)]);
          assert.deepEqual(have.ids, want.ids);
          const calls = engine.batchStats.calls - before.calls;
          assert.equal(calls, steps + 5);
          const ran = engine.batchStats.ranAhead - before.ranAhead;
          assert.equal(
            ran,
            calls - 1,
            `every step after the first ran ahead (addonPicks ${addonPicks}, ${steps} steps)`,
          );
        }
      } finally {
        if (!addonPicks) await engine.close();
      }
    }
  });

  it('tokens the addon picks and feeds are the engine’s picks, with or without a repetition penalty', async () => {
    const request = (sampling: SamplingParams): GenerationRequest => ({
      messages: [{ role: 'user', content: 'count the shapes' }],
      sampling: { temperature: 0, ignoreEos: true, maxTokens: 24, ...sampling },
    });
    // The bundle's own repetition penalty, none, a strong one; presence penalties are picked on this thread only.
    for (const sampling of [
      {},
      { repetitionPenalty: 1 },
      { repetitionPenalty: 1.5 },
      { presencePenalty: 0.5 },
    ]) {
      const before = { ...fused.batchStats };
      const [want, have] = await Promise.all([
        generate(plain, request(sampling)),
        generate(fused, request(sampling)),
      ]);
      assert.deepEqual(have.ids, want.ids, `tokens with ${JSON.stringify(sampling)}`);
      const fed = fused.batchStats.fedAhead - before.fedAhead;
      const ran = fused.batchStats.ranAhead - before.ranAhead;
      assert.equal(ran, 23 - 1, `every step after the first ran ahead with ${JSON.stringify(sampling)}`);
      if ('presencePenalty' in sampling) assert.equal(fed, 0, 'presence penalties are not fed by the addon');
      // A step queued behind one run ahead is fed by the addon (that one has not returned when it is queued): the
      // first such step at least; how many more depends on when this thread gets to queue them.
      else assert.ok(fed > 0, `${fed} of ${ran} steps fed by the addon with ${JSON.stringify(sampling)}`);
    }
    // addonPicks: false picks every token on the worker thread: the same tokens, still run ahead.
    const workerPicks = await LvrEngine.load(bundle, { ...engineOptions, addonPicks: false });
    try {
      const [want, have] = await Promise.all([
        generate(plain, request({})),
        generate(workerPicks, request({})),
      ]);
      assert.deepEqual(have.ids, want.ids);
      assert.equal(workerPicks.batchStats.ranAhead, 23 - 1);
      assert.equal(workerPicks.batchStats.fedAhead, 0);
    } finally {
      await workerPicks.close();
    }
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

  it('the lvr ops graph (the addon’s own projection kernels, here its CPU ones) gives the fused graph’s tokens', async () => {
    const lvr = await LvrEngine.load(bundle, { ...engineOptions, fusedProjections: 'lvr' });
    try {
      assert.equal(lvr.info.fusedProjections, 'lvr');
      assert.equal(
        fused.info.fusedProjections,
        'onnx',
        'auto means ONNX Runtime’s projections off the CUDA EP',
      );
      assert.equal(plain.info.fusedProjections, undefined);
      await assertSameOutcomes(fused, lvr, await concurrentRequests());
    } finally {
      await lvr.close();
    }
  });

  it('the lvr ops’ prefill and step outputs equal the fused graph’s (rows batched, one row, a latent input)', () => {
    const { dec: onnxOps, a, H } = openDecoder(2, 16);
    const { dec: lvrOps } = openDecoder(2, 16, 0, undefined, { lvr: true });
    assert.equal(lvrOps.projections, 'lvr');
    assert.equal(onnxOps.projections, 'onnx');
    const V = a.vocab_size;
    const x = new Float32Array(2 * 4 * H).map((_, i) => Math.cos(i * 0.37) * 0.5);
    const positions = BigInt64Array.from({ length: 3 * 2 * 4 }, (_, i) => BigInt(i % 4));
    const close = (want: Float32Array, have: Float32Array, what: string) => {
      let scale = 0;
      let err = 0;
      want.forEach((v, j) => {
        scale = Math.max(scale, Math.abs(v));
        err = Math.max(err, Math.abs(v - have[j]));
      });
      assert.ok(scale > 0 && err <= 1e-5 * scale, `${what}: error ${err} vs scale ${scale}`);
    };
    const prefill = [onnxOps, lvrOps].map((d) => d.forward(0, x, positions, 0, Int32Array.from([4, 4])));
    assert.equal(prefill[1].logits.length, 2 * V);
    close(prefill[0].logits, prefill[1].logits, 'prefill logits');
    close(prefill[0].hidden as Float32Array, prefill[1].hidden as Float32Array, 'prefill hidden');
    const stepPos = BigInt64Array.from({ length: 6 }, () => 4n);
    const seqlens = Int32Array.from([4, 4]);
    for (const latent of [Uint8Array.from([0, 0]), Uint8Array.from([1, 0])]) {
      const embeds = new Float32Array(2 * H).map((_, i) => Math.sin(i * 0.11));
      const step = [onnxOps, lvrOps].map((d) => d.step(embeds, latent, stepPos, seqlens));
      close(step[0].logits, step[1].logits, `step logits (latent rows ${latent.join(',')})`);
    }
    const one = [onnxOps, lvrOps].map((d) => d.forward(1, x.subarray(0, 3 * H), positions.subarray(0, 9), 0));
    close(one[0].logits, one[1].logits, 'one-row forward logits');
  });

  it('fusedProjections lvr is refused without graphs.decoder_fused_lvr, or for a dtype its kernels do not take', async () => {
    const copy = path.join(dir, 'no-lvr');
    fs.cpSync(bundle, copy, { recursive: true });
    const m = JSON.parse(fs.readFileSync(path.join(bundle, 'manifest.json'), 'utf8'));
    // The copy's manifest becomes `m`, with the completion marker that names its digest.
    const writeManifest = () => {
      const text = JSON.stringify(m);
      fs.writeFileSync(path.join(copy, 'manifest.json'), text);
      const sha = crypto.createHash('sha256').update(text).digest('hex');
      fs.writeFileSync(path.join(copy, '_COMPLETE'), JSON.stringify({ manifest_sha256: sha }));
    };
    delete m.graphs.decoder_fused_lvr;
    writeManifest();
    await assert.rejects(
      LvrEngine.load(copy, { ...engineOptions, fusedProjections: 'lvr' }),
      /graphs\.decoder_fused_lvr/,
    );
    // The CPU EP's lvr kernels are float32: a float16 bundle is refused before anything loads.
    m.graphs.decoder_fused_lvr = 'decoder_fused_lvr.onnx';
    m.io_dtypes.embeds = 'float16';
    writeManifest();
    await assert.rejects(
      LvrEngine.load(copy, { ...engineOptions, fusedProjections: 'lvr' }),
      /runs float32 bundles on the cpu execution provider; this bundle is float16/,
    );
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

  const openDecoder = (
    batch: number,
    capacity: number,
    topK = 0,
    stepSizes?: number[],
    {
      libs,
      lvr,
      ...extra
    }: Pick<FusedDecoderOptions, 'attention' | 'mixedGemmFrom'> & {
      libs?: NativeLibraries;
      lvr?: boolean;
    } = {},
  ) => {
    const a = JSON.parse(fs.readFileSync(path.join(bundle, 'manifest.json'), 'utf8')).architecture;
    const dec = FusedNativeDecoder.open(
      {
        model: path.join(bundle, lvr ? 'decoder_fused_lvr.onnx' : 'decoder_fused.onnx'),
        lvrOps: lvr,
        gpu: false,
        batch,
        capacity,
        layers: a.num_hidden_layers,
        kvHeads: a.num_key_value_heads,
        headDim: a.head_dim,
        hidden: a.hidden_size,
        vocab: a.vocab_size,
        fp16: false,
        topK,
        stepSizes,
        ...extra,
      },
      libs,
    );
    return { dec, a, H: a.hidden_size as number };
  };
  const pos = (n: number, shift = 0) =>
    BigInt64Array.from({ length: 3 * n }, (_, i) => BigInt((i % n) + shift));

  it('a batched prefill of right-padded prompts equals each prompt prefilled alone, and so do their next steps', () => {
    const lengths = [3, 5, 2];
    const S = 5;
    const { dec: batched, a, H } = openDecoder(3, 16);
    const { dec: alone } = openDecoder(3, 16);
    const V = a.vocab_size;
    const rng = (i: number) => Math.sin(i * 12.9898) * 0.5;
    const x = new Float32Array(3 * S * H).map((_, i) => rng(i));
    const positions = new BigInt64Array(3 * 3 * S);
    lengths.forEach((len, b) => {
      for (let axis = 0; axis < 3; axis++)
        positions.set(pos(len, b + axis).subarray(0, len), (axis * 3 + b) * S);
    });
    const got = batched.forward(0, x, positions, 0, Int32Array.from(lengths));
    assert.equal(got.logits.length, 3 * V);
    const maxDiff = (p: Float32Array, q: Float32Array | number) =>
      p.reduce((m, v, j) => Math.max(m, Math.abs(v - (typeof q === 'number' ? q : q[j]))), 0);
    const close = (want: Float32Array, have: Float32Array, what: string) => {
      const scale = maxDiff(want, 0);
      const err = maxDiff(want, have);
      assert.ok(err <= 1e-4 * scale, `${what}: error ${err} vs scale ${scale}`);
    };
    lengths.forEach((len, b) => {
      const own = new BigInt64Array(3 * len);
      for (let axis = 0; axis < 3; axis++)
        own.set(positions.subarray((axis * 3 + b) * S, (axis * 3 + b) * S + len), axis * len);
      const want = alone.forward(b, x.subarray(b * S * H, (b * S + len) * H), own, 0);
      close(want.logits, got.logits.subarray(b * V, (b + 1) * V), `row ${b} prefill logits`);
      close(
        want.hidden as Float32Array,
        (got.hidden as Float32Array).subarray(b * H, (b + 1) * H),
        `row ${b} hidden`,
      );
    });
    // A latent step of every row (each reads its own prefill hidden state) writes over the padding of the short rows.
    const stepPos = BigInt64Array.from({ length: 9 }, (_, i) => BigInt(lengths[i % 3] + 1));
    const seqlens = Int32Array.from(lengths);
    const latent = Uint8Array.from([1, 1, 1]);
    const want = alone.step(new Float32Array(3 * H), latent, stepPos, seqlens);
    const have = batched.step(new Float32Array(3 * H), latent, stepPos, seqlens);
    close(want.logits, have.logits, 'step logits');
    assert.ok(maxDiff(have.logits.subarray(0, V), have.logits.subarray(V)) > 1e-3, 'the rows differ');
  });

  it('a step runs only the slots up to the highest it needs (step sizes): the same rows, the slots past it untouched', async () => {
    const K = FUSED_TOP_K;
    const lengths = [3, 4, 2, 5];
    const S = 5;
    const { dec: everySlot, a, H } = openDecoder(4, 16, K);
    const { dec: sized } = openDecoder(4, 16, K, [1, 2]);
    const x = new Float32Array(4 * S * H).map((_, i) => Math.sin(i * 3.17) * 0.5);
    const positions = new BigInt64Array(3 * 4 * S).map((_, i) => BigInt(i % S));
    for (const dec of [everySlot, sized]) dec.forward(0, x, positions, 0, Int32Array.from(lengths));
    const stepPos = BigInt64Array.from({ length: 12 }, (_, i) => BigInt(lengths[i % 4]));
    const seqlens = Int32Array.from(lengths);
    const embeds = new Float32Array(4 * H).map((_, i) => Math.cos(i * 1.3) * 0.5);
    // Slot 0 alone: the sized decoder runs one slot, the other all four (an empty fullRows reads no logits).
    const args = [embeds, null, stepPos, seqlens, Int32Array.of(0), new Int32Array(0)] as const;
    const one = sized.step(...args);
    const four = everySlot.step(...args);
    assert.equal(one.logits.length, 0);
    assert.deepEqual(Array.from(one.topIds!), Array.from(four.topIds!));
    const maxDiff = (p: ArrayLike<number>, q: ArrayLike<number>) =>
      Array.from(p).reduce((m, v, j) => Math.max(m, Math.abs(v - q[j])), 0);
    assert.ok(maxDiff(one.topLogits!, four.topLogits!) <= 1e-4, 'slot 0 scores the same in a one-slot step');
    assert.ok(maxDiff(one.hidden, four.hidden) <= 1e-4);
    // Slot 3's latent step reads its prefill hidden state only where the slot-0 step left it alone.
    const latentStep = (dec: FusedNativeDecoder) =>
      dec.step(null, Uint8Array.from([0, 0, 0, 1]), stepPos, seqlens, Int32Array.of(3));
    const { dec: fresh } = openDecoder(4, 16, K);
    fresh.forward(0, x, positions, 0, Int32Array.from(lengths));
    const want = latentStep(fresh).logits;
    assert.ok(
      maxDiff(latentStep(sized).logits, want) <= 1e-4,
      'slot 3 was not computed by the one-slot step',
    );
    assert.ok(
      maxDiff(latentStep(everySlot).logits, want) > 1e-3,
      'a four-slot step overwrites slot 3’s state',
    );
    // Slots 1 and 2 need the first three slots: the size after 2 is the batch.
    const mid = sized.step(embeds, null, stepPos, seqlens, Int32Array.of(2, 1));
    assert.equal(mid.logits.length, 2 * a.vocab_size);
    // The logits a one-slot step wrote are kept aside when the next step starts (lastLogits(..., kept)).
    const first = await sized.stepAsync(embeds, null, stepPos, seqlens, Int32Array.of(0));
    await sized.stepAsync(
      embeds.map((v) => -v),
      null,
      stepPos,
      seqlens,
      Int32Array.of(0),
    );
    assert.deepEqual(Array.from(sized.lastLogits(Int32Array.of(0), true)), Array.from(first.logits));
    assert.throws(() => openDecoder(4, 16, K, [2, 1]), /stepSizes must ascend/);
    assert.throws(() => openDecoder(4, 16, K, [8]), /stepSizes must ascend, each from 1 to batch/);
  });

  it('steps of at least mixedGemmFrom slots run through the second session over the same KV slots: the same outputs', () => {
    const K = FUSED_TOP_K;
    const lengths = [3, 4, 2, 5];
    const S = 5;
    const { dec: one, a, H } = openDecoder(4, 16, K, [1, 2]);
    const { dec: two } = openDecoder(4, 16, K, [1, 2], { mixedGemmFrom: 2 });
    assert.equal(one.sessions(), 1);
    assert.equal(two.sessions(), 2);
    const V: number = a.vocab_size;
    const x = new Float32Array(4 * S * H).map((_, i) => Math.sin(i * 2.71) * 0.5);
    const positions = new BigInt64Array(3 * 4 * S).map((_, i) => BigInt(i % S));
    for (const dec of [one, two]) dec.forward(0, x, positions, 0, Int32Array.from(lengths));
    const all = Int32Array.of(0, 1, 2, 3);
    const embeds = new Float32Array(4 * H).map((_, i) => Math.cos(i * 0.7) * 0.5);
    // A four-slot step (the second session) appends to every slot; a one-slot step (the first) then reads slot 0's.
    for (const [shift, rows] of [
      [0, all],
      [1, Int32Array.of(0)],
    ] as const) {
      const stepPos = BigInt64Array.from({ length: 12 }, (_, i) => BigInt(lengths[i % 4] + shift));
      const seqlens = Int32Array.from(lengths, (n) => n + shift);
      const want = one.step(embeds, null, stepPos, seqlens, rows, rows);
      const have = two.step(embeds, null, stepPos, seqlens, rows, rows);
      assert.equal(have.logits.length, rows.length * V);
      const err = want.logits.reduce((m, v, j) => Math.max(m, Math.abs(v - have.logits[j])), 0);
      assert.ok(err <= 1e-5, `logits of a ${rows.length}-slot step differ by ${err}`);
      assert.deepEqual(Array.from(have.topIds!), Array.from(want.topIds!));
    }
    assert.throws(() => openDecoder(4, 16, K, [1, 2], { mixedGemmFrom: 5 }), /mixedGemmFrom must be from 0/);
  });

  it('stepAsync calls queue in order; FEED_PICK slots take greedyFromTop’s pick under their rule, as JS would feed them', async () => {
    const K = FUSED_TOP_K;
    const lengths = [3, 4, 2];
    const S = 4;
    const { dec: driven, a, H } = openDecoder(3, 16, K);
    const { dec: queued } = openDecoder(3, 16, K);
    const V: number = a.vocab_size;
    const table = new Float32Array(V * H).map((_, i) => Math.sin(i * 0.37) * 0.5);
    queued.setEmbeddings(table);
    const x = new Float32Array(3 * S * H).map((_, i) => Math.cos(i * 1.3) * 0.5);
    const positions = new BigInt64Array(3 * 3 * S).map((_, i) => BigInt(i % S));
    for (const dec of [driven, queued]) dec.forward(0, x, positions, 0, Int32Array.from(lengths));
    // Slot 0 greedy, slots 1 and 2 under repetition penalties, slot 2 with prompt tokens seen.
    const rules = [{}, { repetitionPenalty: 1.3 }, { repetitionPenalty: 2 }];
    const seen = [new Set<number>(), new Set<number>(), new Set<number>([5, 17, 99])];
    rules.forEach((r, b) => queued.setPickRule(b, r.repetitionPenalty ?? 1, Int32Array.from(seen[b])));
    const stepInputs = (shift: number) => ({
      positions: BigInt64Array.from({ length: 9 }, (_, i) => BigInt(lengths[i % 3] + shift)),
      seqlens: Int32Array.from(lengths, (n) => n + shift),
    });
    const firstIds = [3, 5, 7];
    const first = new Float32Array(3 * H);
    firstIds.forEach((id, b) => first.set(table.subarray(id * H, (id + 1) * H), b * H));
    const steps = 6;
    // The reference: each step's tokens picked here (greedyFromTop) from the step before's top candidates.
    const want: FusedStepOutput[] = [];
    const picked: number[][] = [];
    let ids = firstIds;
    for (let t = 0; t < steps; t++) {
      ids.forEach((id, b) => seen[b].add(id));
      const { positions: p, seqlens } = stepInputs(t);
      const embeds = new Float32Array(3 * H);
      ids.forEach((id, b) => embeds.set(table.subarray(id * H, (id + 1) * H), b * H));
      const out = driven.step(embeds, null, p, seqlens);
      want.push(out);
      ids = [0, 1, 2].map((b) =>
        greedyFromTop(
          out.topIds!.subarray(b * K, (b + 1) * K),
          out.topLogits!.subarray(b * K, (b + 1) * K),
          seen[b],
          rules[b],
        )!,
      );
      picked.push(ids);
    }
    // All steps submitted at once: every one after the first is fed on the addon's thread.
    const pending = Array.from({ length: steps }, (_, t) => {
      const { positions: p, seqlens } = stepInputs(t);
      return t === 0
        ? queued.stepAsync(first, null, p, seqlens, undefined, undefined, Int32Array.from(firstIds))
        : queued.stepAsync(null, null, p, seqlens, undefined, undefined, new Int32Array(3).fill(FEED_PICK));
    });
    const have = await Promise.all(pending);
    have.forEach((out, t) => {
      if (t > 0) assert.deepEqual(Array.from(out.fedIds!), picked[t - 1], `step ${t} fed tokens`);
      assert.deepEqual(Array.from(out.topIds!), Array.from(want[t].topIds!), `step ${t} top ids`);
      assert.deepEqual(Array.from(out.logits), Array.from(want[t].logits), `step ${t} logits`);
    });
    assert.deepEqual(Array.from(have[0].fedIds!), [NO_TOKEN, NO_TOKEN, NO_TOKEN]);
    const firstCandidate = (t: number, b: number) => want[t].topIds![b * K];
    assert.ok(
      picked.some((ids, t) => ids[1] !== firstCandidate(t, 1) || ids[2] !== firstCandidate(t, 2)),
      'a penalty moved a pick off the first candidate',
    );
    // A slot the step before did not return has nothing to pick from: that step fails, the ones queued before do not.
    const { positions: p, seqlens } = stepInputs(steps);
    const feedAll = new Int32Array(3).fill(FEED_PICK);
    const partial = queued.stepAsync(first, null, p, seqlens, Int32Array.of(0, 1));
    const unfed = queued.stepAsync(null, null, p, seqlens, undefined, undefined, feedAll);
    assert.equal((await partial).topIds!.length, 2 * K);
    await assert.rejects(unfed, /slot 2 has no top candidates from the step before/);
    // Every candidate seen under a large penalty: the K candidates do not decide the pick.
    queued.step(first, null, p, seqlens);
    queued.setPickRule(
      0,
      1e6,
      Int32Array.from({ length: V }, (_, i) => i),
    );
    await assert.rejects(
      queued.stepAsync(null, null, p, seqlens, undefined, undefined, feedAll),
      (e: Error & { code?: string }) =>
        /slot 0's top candidates do not decide its pick/.test(e.message) && e.code === 'LVR_NATIVE_NOT_RUN',
    );
    // After a forward nothing is fed either; and a decoder without a table refuses picks before queueing them.
    queued.forward(0, x, positions, 0, Int32Array.from(lengths));
    await assert.rejects(
      queued.stepAsync(null, null, p, seqlens, undefined, undefined, feedAll),
      /no top candidates from the step before/,
    );
    assert.throws(
      () => driven.step(null, null, p, seqlens, undefined, undefined, feedAll),
      /a pick needs the top candidates \(topK\) and the embedding table/,
    );
    assert.throws(
      () => queued.step(first, null, p, seqlens, undefined, undefined, Int32Array.of(0, V, 0)),
      /tokens:/,
    );
    assert.throws(() => queued.setEmbeddings(new Float32Array(V)), /embedding table holds/);
    assert.throws(() => queued.setPickRule(0, 0.5, new Int32Array(0)), /at least 1/);
    assert.throws(() => queued.setPickRule(3, 1, new Int32Array(0)), /slot out of range/);
  });

  it('PICK_UNFED slots take their placeholder by their rule, into their seen tokens; their input stays latent', async () => {
    const K = FUSED_TOP_K;
    const lengths = [3, 4, 2];
    const { dec: driven, a, H } = openDecoder(3, 16, K);
    const { dec: queued } = openDecoder(3, 16, K);
    const V: number = a.vocab_size;
    const table = new Float32Array(V * H).map((_, i) => Math.sin(i * 0.37) * 0.5);
    queued.setEmbeddings(table);
    const x = new Float32Array(3 * 4 * H).map((_, i) => Math.cos(i * 1.3) * 0.5);
    const positions = new BigInt64Array(3 * 3 * 4).map((_, i) => BigInt(i % 4));
    for (const dec of [driven, queued]) dec.forward(0, x, positions, 0, Int32Array.from(lengths));
    // Every seen token loses to every unseen one.
    const rule = { repetitionPenalty: 1e6 };
    const stepInputs = (shift: number) => ({
      positions: BigInt64Array.from({ length: 9 }, (_, i) => BigInt(lengths[i % 3] + shift)),
      seqlens: Int32Array.from(lengths, (n) => n + shift),
    });
    const embed = (ids: number[]) => {
      const e = new Float32Array(3 * H);
      ids.forEach((id, b) => e.set(table.subarray(id * H, (id + 1) * H), b * H));
      return e;
    };
    const candidates = (out: FusedStepOutput, b: number) =>
      Array.from(out.topIds!.subarray(b * K, (b + 1) * K));
    const pick = (out: FusedStepOutput, b: number, seenHere: Set<number>) =>
      greedyFromTop(
        out.topIds!.subarray(b * K, (b + 1) * K),
        out.topLogits!.subarray(b * K, (b + 1) * K),
        seenHere,
        rule,
      )!;
    const latent = Uint8Array.of(1, 1, 1);
    // A step's arguments with every row returned and `tokens` for the addon's picks.
    const withTokens = (
      s: { positions: BigInt64Array; seqlens: Int32Array },
      embeds: Float32Array | null,
      latentRows: Uint8Array | null,
      tokens: Int32Array,
    ) => [embeds, latentRows, s.positions, s.seqlens, undefined, undefined, tokens] as const;
    // The reference, picked here: a token step, a latent step whose placeholders are picked from the first step's
    // top candidates, then a token step fed the picks from the latent step's, counting the placeholders as seen.
    const firstIds = [3, 5, 7];
    const [s0, s1, s2] = [0, 1, 2].map(stepInputs);
    const out0 = driven.step(embed(firstIds), null, s0.positions, s0.seqlens);
    const out1 = driven.step(null, latent, s1.positions, s1.seqlens);
    // Each slot's first seen tokens make its placeholder the best candidate of both steps that they share (the latent
    // step's outputs do not depend on it), so the pick after it is another token only when it counts as seen.
    const seen = [0, 1, 2].map((b) => {
      const later = candidates(out1, b);
      const shared = later.find((id) => candidates(out0, b).includes(id) && !firstIds.includes(id));
      if (shared === undefined) return new Set([firstIds[b]]);
      const above = (list: number[]) => list.slice(0, list.indexOf(shared));
      return new Set([firstIds[b], ...above(candidates(out0, b)), ...above(later)]);
    });
    seen.forEach((ids, b) =>
      queued.setPickRule(
        b,
        rule.repetitionPenalty,
        Int32Array.from(ids).filter((id) => id !== firstIds[b]),
      ),
    );
    const placeholders = [0, 1, 2].map((b) => pick(out0, b, seen[b]));
    const withoutPlaceholders = [0, 1, 2].map((b) => pick(out1, b, seen[b]));
    placeholders.forEach((id, b) => seen[b].add(id));
    const fedIds = [0, 1, 2].map((b) => pick(out1, b, seen[b]));
    assert.notDeepEqual(withoutPlaceholders, fedIds, 'a placeholder changes the pick after it');
    const out2 = driven.step(embed(fedIds), null, s2.positions, s2.seqlens);
    // The same three steps queued at once on the addon's thread.
    const have = await Promise.all([
      queued.stepAsync(...withTokens(s0, embed(firstIds), null, Int32Array.from(firstIds))),
      queued.stepAsync(...withTokens(s1, null, latent, new Int32Array(3).fill(PICK_UNFED))),
      queued.stepAsync(...withTokens(s2, null, null, new Int32Array(3).fill(FEED_PICK))),
    ]);
    assert.deepEqual(Array.from(have[1].fedIds!), placeholders);
    assert.deepEqual(Array.from(have[2].fedIds!), fedIds);
    [out0, out1, out2].forEach((want, t) =>
      assert.deepEqual(Array.from(have[t].logits), Array.from(want.logits), `step ${t} logits`),
    );
    // A placeholder needs the top candidates of the step before.
    const { dec: noTop } = openDecoder(3, 16);
    assert.throws(
      () => noTop.step(...withTokens(s1, null, latent, new Int32Array(3).fill(PICK_UNFED))),
      /a placeholder pick needs the top candidates/,
    );
    assert.throws(
      () => queued.step(...withTokens(s1, null, latent, new Int32Array(3).fill(-4))),
      /tokens: each must be a token id/,
    );
  });

  // A library that loads wherever the addon runs, standing in for cuDNN 9.
  const withCudnn = { ...nativeLibraries(), cudnn: nativeLibraries().onnxruntime };
  const withoutCudnn = { ...nativeLibraries(), cudnn: '/nonexistent/libcudnn.so.9' };

  it('auto picks cuDNN’s attention where cuDNN loads and XQA otherwise; cudnn without cuDNN is refused', () => {
    assert.equal(
      openDecoder(1, 8, 0, undefined, { attention: 'auto', libs: withCudnn }).dec.attention,
      'cudnn',
    );
    assert.equal(
      openDecoder(1, 8, 0, undefined, { attention: 'auto', libs: withoutCudnn }).dec.attention,
      'xqa',
    );
    assert.equal(
      openDecoder(1, 8, 0, undefined, { attention: 'flash', libs: withoutCudnn }).dec.attention,
      'flash',
    );
    assert.equal(openDecoder(1, 8).dec.attention, undefined);
    assert.throws(
      () => openDecoder(1, 8, 0, undefined, { attention: 'cudnn', libs: withoutCudnn }),
      /attention kernel cudnn needs cuDNN 9 \(\/nonexistent\/libcudnn.so.9\)/,
    );
  });

  it('the attention kernel is chosen for the session only: the process environment is as it was', () => {
    process.env.ORT_ENABLE_XQA = '7';
    delete process.env.ORT_ENABLE_CUDNN_FLASH_ATTENTION;
    try {
      for (const attention of ['xqa', 'cudnn', 'flash'] as const)
        openDecoder(1, 8, 0, undefined, { attention, libs: withCudnn });
      assert.equal(process.env.ORT_ENABLE_XQA, '7');
      assert.equal(process.env.ORT_ENABLE_CUDNN_FLASH_ATTENTION, undefined);
      assert.throws(
        () => openDecoder(1, 8, 0, undefined, { attention: 'fast' as GpuAttentionKernel }),
        /attention must be "xqa", "cudnn" or "flash"/,
      );
    } finally {
      delete process.env.ORT_ENABLE_XQA;
    }
  });

  it('a prefill sends every row’s top candidates and the whole logits of the rows asked for; forwardLogits reads the rest', () => {
    const K = FUSED_TOP_K;
    const { dec, a, H } = openDecoder(3, 16, K);
    const V: number = a.vocab_size;
    assert.throws(() => dec.forwardLogits(Int32Array.of(0)), /no forward ran/);
    const lengths = Int32Array.from([3, 5, 2]);
    const S = 5;
    const x = new Float32Array(3 * S * H).map((_, i) => Math.cos(i * 7.31) * 0.5);
    const positions = new BigInt64Array(3 * 3 * S).map((_, i) => BigInt(i % S));
    const all = dec.forward(0, x, positions, 0, lengths);
    assert.equal(all.logits.length, 3 * V);
    const some = dec.forward(0, x, positions, 0, lengths, Int32Array.of(2));
    const row = (logits: Float32Array, b: number) => Array.from(logits.subarray(b * V, (b + 1) * V));
    assert.deepEqual(Array.from(some.logits), row(all.logits, 2));
    assert.deepEqual(Array.from(some.hidden), Array.from(all.hidden));
    for (let b = 0; b < 3; b++) {
      const want = row(all.logits, b)
        .map((v, id) => ({ v, id }))
        .sort((p, q) => q.v - p.v || p.id - q.id)
        .slice(0, K);
      assert.deepEqual(
        Array.from(some.topIds!.subarray(b * K, (b + 1) * K)),
        want.map((c) => c.id),
      );
      assert.deepEqual(
        Array.from(some.topLogits!.subarray(b * K, (b + 1) * K)),
        want.map((c) => c.v),
      );
    }
    const late = dec.forwardLogits(Int32Array.of(1, 0));
    assert.deepEqual(Array.from(late), [...row(all.logits, 1), ...row(all.logits, 0)]);
    assert.throws(() => dec.forwardLogits(Int32Array.of(3)), /row out of range/);
    assert.throws(() => dec.forward(0, x, positions, 0, lengths, Int32Array.of(3)), /full: row out of range/);
  });

  it('the addon refuses inputs that do not fit, before running anything', () => {
    const { dec, a, H } = openDecoder(2, 8);
    assert.throws(() => dec.forward(0, new Float32Array(9 * H), pos(9), 0), /exceeds the KV capacity/);
    assert.throws(() => dec.forward(2, new Float32Array(H), pos(1), 0), /row out of range/);
    assert.throws(() => dec.forward(0, new Float32Array(H + 1), pos(1), 0), /embeds holds/);
    const two = Int32Array.from([2, 1]);
    assert.throws(() => dec.forward(1, new Float32Array(4 * H), pos(4), 0, two), /row out of range/);
    assert.throws(
      () => dec.forward(0, new Float32Array(4 * H), pos(4), 0, Int32Array.from([3, 1])),
      /1 \.\. S/,
    );
    assert.throws(
      () => dec.forward(0, new Float32Array(4 * H), pos(4), 1, two),
      /padded rows need pastLength 0/,
    );
    assert.throws(() => dec.forward(0, new Float32Array(3 * H), pos(3), 0, two), /3 \* rows \* S/);
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
