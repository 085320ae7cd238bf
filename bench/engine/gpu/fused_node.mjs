// Node side of the fused-decoder GPU bench (issue #14): the native addon (libs/engine/native) runs prep.py's fp16
// bundle's graphs.decoder_fused on ONNX Runtime's CUDA EP from Node, KV on the GPU, the step captured in a CUDA
// graph. Reports ms per step at batch 1 (token and latent steps, with and without the CUDA graph), aggregate tokens/s
// at 8 and 32 streams (also with only each row's top 64 logits read back, as the engine's greedy rows), the prefill
// of a 32- and a 1024-position prompt, 32 prompts prefilled in one call against one call each, and a check that the
// captured step returns the same logits as the uncaptured.
//   node bench/engine/gpu/fused_node.mjs ADDON WORK OUT.json ORT_LIB CUDART_LIB|-
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const [addonPath, work, outPath, ortLib, cudartLib] = process.argv.slice(2);
const native = createRequire(import.meta.url)(path.resolve(addonPath));
const bundle = path.join(work, 'bundle-fp16');
const arch = JSON.parse(fs.readFileSync(path.join(bundle, 'manifest.json'), 'utf8')).architecture;
// CUDART_LIB '-' runs the same script on the CPU EP (a check of the script itself, not a measurement).
const gpu = cudartLib !== '-';
const out = {
  side: 'node-addon',
  gpu,
  ort: native.init(ortLib, gpu ? cudartLib : undefined),
  layers: arch.num_hidden_layers,
  runs: [],
  errors: {},
};
const save = () => fs.writeFileSync(outPath, JSON.stringify(out, null, 2));
const H = arch.hidden_size;
const STEPS = 64;
const WARMUP = 6;

function decoder(batch, cudaGraph, capacity = 1536) {
  return native.createDecoder({
    model: path.join(bundle, 'decoder_fused.onnx'),
    gpu,
    cudaGraph: gpu && cudaGraph,
    fp16: true,
    batch,
    capacity,
    layers: arch.num_hidden_layers,
    kvHeads: arch.num_key_value_heads,
    headDim: arch.head_dim,
    hidden: H,
    vocab: arch.vocab_size,
    topK: Math.min(64, arch.vocab_size),
  });
}

function randomHalf(n, seed) {
  // fp16 bit patterns of small values (exponent 0x3000-0x3bff: ~0.125..1), sign alternating
  const a = new Uint16Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    a[i] = 0x3000 + (x % 0x0c00) + (i % 2 ? 0x8000 : 0);
  }
  return a;
}

function stepInputs(batch, position) {
  return {
    positions: new BigInt64Array(3 * batch).fill(BigInt(position)),
    seqlens: new Int32Array(batch).fill(position),
  };
}

// topOnly: whole logit rows stay on the GPU, only each row's top 64 come back (the engine's greedy rows).
function timeSteps(dec, batch, context, latent, topOnly = false) {
  const emb = randomHalf(batch * H, 7);
  const latentRows = latent ? new Uint8Array(batch).fill(1) : null;
  const fullRows = topOnly ? new Int32Array(0) : undefined;
  let t0 = 0;
  for (let s = 0; s < WARMUP + STEPS; s++) {
    if (s === WARMUP) t0 = performance.now();
    const { positions, seqlens } = stepInputs(batch, context + s);
    native.step(dec, latent ? null : emb, latentRows, positions, seqlens, undefined, fullRows);
  }
  return (performance.now() - t0) / STEPS;
}

function part(name, fn) {
  try {
    return fn();
  } catch (e) {
    out.errors[name] = String(e?.message ?? e).slice(0, 1000);
  } finally {
    save();
  }
}

part('graph_equals_eager', () => {
  const logits = [];
  for (const graph of [false, true]) {
    const dec = decoder(1, graph, 256);
    const prompt = 24;
    native.forward(
      dec,
      0,
      randomHalf(prompt * H, 3),
      BigInt64Array.from({ length: 3 * prompt }, (_, i) => BigInt(i % prompt)),
      0,
    );
    let r;
    for (let s = 0; s < 8; s++) {
      const { positions, seqlens } = stepInputs(1, prompt + s);
      r = native.step(dec, randomHalf(H, 11 + s), null, positions, seqlens);
    }
    logits.push(r.logits);
  }
  let diff = 0;
  for (let i = 0; i < logits[0].length; i++) diff = Math.max(diff, Math.abs(logits[0][i] - logits[1][i]));
  out.graph_equals_eager = { max_abs_diff: diff };
});

part('prefill', () => {
  const dec = decoder(1, false, 1536);
  out.prefill = [];
  for (const n of [32, 1024, 32, 1024]) {
    const pos = BigInt64Array.from({ length: 3 * n }, (_, i) => BigInt(i % n));
    const emb = randomHalf(n * H, 5);
    const t0 = performance.now();
    native.forward(dec, 0, emb, pos, 0);
    out.prefill.push({ positions: n, ms: performance.now() - t0 });
  }
});

// 32 prompts of 17..48 positions into 32 slots: one batched call (right-padded to the longest) against one call per
// prompt, timed alternately after a warm-up of each; also the largest logit difference between the two (fp16).
part('batched_prefill', () => {
  const n = 32;
  const dec = decoder(n, true, 256);
  const lengths = Int32Array.from({ length: n }, (_, b) => 17 + ((b * 7) % 32));
  const S = Math.max(...lengths);
  const emb = randomHalf(n * S * H, 9);
  const pos = new BigInt64Array(3 * n * S);
  lengths.forEach((len, b) => {
    for (let a = 0; a < 3; a++) for (let s = 0; s < len; s++) pos[(a * n + b) * S + s] = BigInt(s);
  });
  const alone = () =>
    Array.from(lengths, (len, b) => {
      const own = BigInt64Array.from({ length: 3 * len }, (_, i) => BigInt(i % len));
      return native.forward(dec, b, emb.subarray(b * S * H, (b * S + len) * H), own, 0).logits;
    });
  const batched = () => native.forward(dec, 0, emb, pos, 0, lengths).logits;
  const time = (fn) => {
    const t0 = performance.now();
    const r = fn();
    return { ms: performance.now() - t0, r };
  };
  alone();
  batched();
  const runs = [];
  let diff = 0;
  for (let k = 0; k < 3; k++) {
    const a = time(alone);
    const b = time(batched);
    runs.push({ one_call_per_prompt_ms: a.ms, batched_ms: b.ms, speedup: a.ms / b.ms });
    const V = arch.vocab_size;
    a.r.forEach((row, i) => {
      for (let j = 0; j < V; j++) diff = Math.max(diff, Math.abs(row[j] - b.r[i * V + j]));
    });
  }
  out.batched_prefill = { prompts: n, lengths: [Math.min(...lengths), S], runs, max_abs_logit_diff: diff };
});

for (const batch of [1, 8, 32]) {
  for (const graph of batch === 1 ? [false, true] : [true]) {
    part(`b${batch}_graph${graph ? 1 : 0}`, () => {
      const dec = decoder(batch, graph);
      for (const context of [32, 1024]) {
        const r = { batch, cuda_graph: graph, context, ms_per_step: timeSteps(dec, batch, context, false) };
        if (batch === 1) r.ms_per_latent_step = timeSteps(dec, batch, context + 128, true);
        r.aggregate_tok_s = (batch * 1e3) / r.ms_per_step;
        if (graph) {
          r.ms_per_step_top_only = timeSteps(dec, batch, context + 256, false, true);
          r.aggregate_tok_s_top_only = (batch * 1e3) / r.ms_per_step_top_only;
        }
        out.runs.push(r);
      }
    });
  }
}
save();
console.log('NODE_FUSED ' + JSON.stringify(out));
