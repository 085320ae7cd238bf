/**
 * TS side of the GPU engine bench: the engine on the WebGPU execution provider, on each bundle under WORK
 * (bundle-fp16, bundle-int4 when present), with the KV caches kept on the device (`deviceKv`, the default) and,
 * for fp16, copied through the host every step (the first GPU path) as the in-run baseline.
 *
 *   node bench.js WORK OUT.json DEADLINE_EPOCH_S
 *
 * Per configuration: load time; TTFT of the one-image prompt (WORK/image.png, 1036 px) with its preprocess and
 * prefill parts; decode ms/token at batch 1 (text prompt, N tokens, ignore EOS); latent-step cost (a prompt ending
 * in <|lvr_start|>, fixed latent steps) against the token step of a text run of the same length just before it, the
 * median of LATENT_PAIRS pairs; aggregate tokens/s of 8 concurrent streams.
 * First, when WORK/bundle-fp16-floats exists (prep.py --vision-floats: the same bundle with the vision graph exported
 * before `image_bytes`, which takes float pixel values computed on the host): the image prompt's TTFT on both
 * bundles, run in turn VISION_FORM_RUNS times each (`vision_forms`: medians and every run).
 * Parts that would start after the deadline are skipped and say so. OUT is rewritten after every part.
 */
import fs from 'node:fs';
import path from 'node:path';
import { LvrEngine } from '@lvr/engine';
import type { ExecutionProviderName, GenerationRequest, GpuAttentionKernel, Timings } from '@lvr/engine';
import { median } from '../../stats';
import parity from './parity_prompts.json';

const N_TOKENS = 64;
const LATENT_STEPS = 32;
/** Text and latent runs measured in turn for the latent step's cost (the median pair is reported). */
const LATENT_PAIRS = 5;
const STREAMS = 8;
const VISION_FORM_RUNS = 7;
// LVR_BENCH_EP=cuda: the fused decoder (native addon), one engine with 32 KV slots, 8 and 32 concurrent streams.
const EP = (process.env.LVR_BENCH_EP ?? 'webgpu') as ExecutionProviderName;
const CUDA = EP === 'cuda';
const STREAM_COUNTS = CUDA ? [STREAMS, 32] : [STREAMS];

interface RunResult {
  wallMs: number;
  firstMs: number;
  tokens: number;
  timings: Timings;
}

async function run(engine: LvrEngine, request: GenerationRequest): Promise<RunResult> {
  const t0 = performance.now();
  let firstMs = 0;
  let tokens = 0;
  let timings: Timings | undefined;
  for await (const d of engine.generate(request)) {
    if (!firstMs) firstMs = performance.now() - t0;
    tokens += d.tokenIds.length;
    if (d.finishReason) timings = d.timings;
  }
  return { wallMs: performance.now() - t0, firstMs, tokens, timings: timings! };
}

const text = (n: number, extra: Partial<GenerationRequest> = {}): GenerationRequest => ({
  messages: [{ role: 'user', content: 'Write a long story about a lighthouse keeper and the sea.' }],
  // Greedy, like the PyTorch side's generate(do_sample=False): the same work per token on both sides.
  sampling: { maxTokens: n, ignoreEos: true, temperature: 0 },
  ...extra,
});

async function main(): Promise<void> {
  const [work, outPath, deadlineArg] = process.argv.slice(2);
  const deadline = Number(deadlineArg) * 1000;
  const image = fs.readFileSync(path.join(work, 'image.png'));
  const imageRequest: GenerationRequest = {
    messages: [
      {
        role: 'user',
        content: [
          { type: 'image', image },
          { type: 'text', text: 'Describe it.' },
        ],
      },
    ],
    sampling: { maxTokens: 1, ignoreEos: true },
  };
  const out: Record<string, unknown> = {
    n_tokens: N_TOKENS,
    latent_steps: LATENT_STEPS,
    streams: STREAMS,
    configs: {},
    errors: {},
  };
  const configs = out.configs as Record<string, Record<string, unknown>>;
  const errors = out.errors as Record<string, string>;
  const save = () => fs.writeFileSync(outPath, JSON.stringify(out, null, 2));
  type Config = {
    bundle: string;
    deviceKv: boolean;
    profile?: boolean;
    allSlots?: boolean;
    attention?: GpuAttentionKernel;
    mixedGemmFrom?: number;
    workerPicks?: boolean;
    onnxProjections?: boolean;
  };
  const floats = path.join(work, 'bundle-fp16-floats');
  if (fs.existsSync(path.join(floats, '_COMPLETE'))) {
    try {
      out.vision_forms = await visionForms(
        { image_bytes: path.join(work, 'bundle-fp16'), pixel_values: floats },
        imageRequest,
      );
    } catch (error) {
      errors.vision_forms = String((error as Error).stack ?? error).slice(0, 800);
    }
    save();
  }
  const plan: Config[] = CUDA
    ? [
        { bundle: 'fp16', deviceKv: true },
        // The same engine with ONNX Runtime's projections (graphs.decoder_fused) instead of the addon's own kernels.
        { bundle: 'fp16', deviceKv: true, onnxProjections: true },
        // The same engine with every step over all its KV slots (stepRowBuckets: false): the in-run baseline.
        { bundle: 'fp16', deviceKv: true, allSlots: true },
        // Every step run ahead picked on the worker thread once its predecessor is back (addonPicks: false).
        { bundle: 'fp16', deviceKv: true, workerPicks: true },
        // GroupQueryAttention's other decode kernels than the engine's default (cuDNN's flash attention).
        { bundle: 'fp16', deviceKv: true, attention: 'xqa' },
        { bundle: 'fp16', deviceKv: true, attention: 'flash' },
        { bundle: 'int4', deviceKv: true },
        { bundle: 'int4', deviceKv: true, allSlots: true },
        // Steps of 8 or more slots through the second session with int4 matmuls on the mixed-input GEMM.
        { bundle: 'int4', deviceKv: true, mixedGemmFrom: 8 },
      ]
    : [
        { bundle: 'fp16', deviceKv: true },
        { bundle: 'fp16', deviceKv: false },
        { bundle: 'int4', deviceKv: true },
        // onnxruntime's per-node profile of a short decode (where the step's time goes); not a timing run.
        { bundle: 'fp16', deviceKv: true, profile: true },
      ];
  for (const {
    bundle,
    deviceKv,
    profile,
    allSlots,
    attention,
    mixedGemmFrom,
    workerPicks,
    onnxProjections,
  } of plan) {
    const dir = path.join(work, `bundle-${bundle}`);
    const variant = allSlots
      ? '_allslots'
      : profile
        ? '_profile'
        : attention
          ? `_${attention}`
          : mixedGemmFrom
            ? `_mixed${mixedGemmFrom}`
            : workerPicks
              ? '_worker_picks'
              : onnxProjections
                ? '_onnx_projections'
                : '';
    const name = `${bundle}_${deviceKv ? 'device_kv' : 'host_kv'}${variant}`;
    // LVR_BENCH_ONLY=NAME[,NAME]: only these configurations (a call that measures one of them).
    if (process.env.LVR_BENCH_ONLY && !process.env.LVR_BENCH_ONLY.split(',').includes(name)) continue;
    if (profile) process.env.LVR_ORT_PROFILE_PREFIX = path.join(path.dirname(outPath), 'ort_profile_decoder');
    if (!fs.existsSync(path.join(dir, '_COMPLETE'))) {
      errors[name] = 'bundle not exported (time budget)';
      continue;
    }
    // The load options that differ between configurations (null: the engine's default).
    const cfg: Record<string, unknown> = {
      engine_options: {
        attentionKernel: attention ?? null,
        int4MixedGemmFromSlots: mixedGemmFrom ?? 0,
        stepRowBuckets: !allSlots,
        addonPicks: !workerPicks,
        fusedProjections: onnxProjections ? 'onnx' : null,
      },
    };
    configs[name] = cfg;
    const part = async (key: string, fn: () => Promise<unknown>) => {
      if (Date.now() > deadline) {
        errors[`${name}.${key}`] = 'skipped: time budget';
        return;
      }
      try {
        cfg[key] = await fn();
      } catch (error) {
        errors[`${name}.${key}`] = String((error as Error).stack ?? error).slice(0, 800);
      }
      save();
    };
    if (Date.now() > deadline) {
      errors[name] = 'skipped: time budget';
      continue;
    }
    const t0 = performance.now();
    let engine: LvrEngine;
    try {
      engine = await LvrEngine.load(dir, {
        // LVR_BENCH_EP=cpu: smoke test of this script on a machine without a GPU (numbers meaningless).
        executionProvider: EP,
        deviceKv,
        stepRowBuckets: !allSlots,
        attentionKernel: attention,
        int4MixedGemmFromSlots: mixedGemmFrom,
        addonPicks: !workerPicks,
        ...(onnxProjections ? { fusedProjections: 'onnx' as const } : {}),
        verifyChecksums: false,
        maxBatchSize: Math.max(...STREAM_COUNTS),
        // The fused decoder allocates every slot's KV capacity up front.
        ...(CUDA ? { maxModelLen: 4096 } : {}),
      });
    } catch (error) {
      errors[name] = String((error as Error).stack ?? error).slice(0, 800);
      save();
      continue;
    }
    cfg.load_s = (performance.now() - t0) / 1000;
    // Whether the fused step runs captured in a CUDA graph (a graph ONNX Runtime refuses to capture runs uncaptured).
    cfg.decoder = engine.info.decoder;
    cfg.gpu_attention = engine.info.gpuAttention ?? null;
    cfg.fused_projections = engine.info.fusedProjections ?? null;
    if (profile) {
      await part('profiled_decode', async () => {
        await run(engine, text(4));
        const r = await run(engine, text(16));
        return { ms_per_token: r.timings.decodeMs / r.timings.tokenSteps };
      });
      await engine.close();
      delete process.env.LVR_ORT_PROFILE_PREFIX;
      save();
      continue;
    }
    await part('warmup_s', async () => {
      const w0 = performance.now();
      await run(engine, text(4));
      await run(engine, imageRequest);
      return (performance.now() - w0) / 1000;
    });
    // The host-KV baseline differs only in decode steps: its TTFT, latent and batch parts are not repeated.
    if (deviceKv && !variant)
      await part('ttft_image', async () => {
        const runs = [await run(engine, imageRequest), await run(engine, imageRequest)];
        const best = runs.reduce((a, b) => (a.firstMs <= b.firstMs ? a : b));
        return {
          ttft_ms: best.firstMs,
          preprocess_ms: best.timings.preprocessMs,
          prefill_ms: best.timings.prefillMs,
          vision_ms: best.timings.visionMs,
        };
      });
    let tokenMs = 0;
    await part('decode_b1', async () => {
      const fed0 = engine.batchStats.fedAhead;
      const r = await run(engine, text(N_TOKENS));
      tokenMs = r.timings.decodeMs / r.timings.tokenSteps;
      return {
        ms_per_token: tokenMs,
        tok_s: 1000 / tokenMs,
        token_steps: r.timings.tokenSteps,
        steps_fed_by_addon: engine.batchStats.fedAhead - fed0,
      };
    });
    await part('decode_b1_after_image', async () => {
      // The same decode after the ~1.4k-token image prompt: the KV cache a host round trip would carry is larger.
      const r = await run(engine, {
        ...imageRequest,
        sampling: { maxTokens: N_TOKENS / 2, ignoreEos: true },
      });
      const ms = r.timings.decodeMs / r.timings.tokenSteps;
      return { ms_per_token: ms, tok_s: 1000 / ms, token_steps: r.timings.tokenSteps };
    });
    if (deviceKv)
      await part('latent_vs_token', async () => {
        // Pairs of runs of the same length: a text of LATENT_STEPS + 16 tokens, then the latent run, whose token steps
        // are charged at that text's step time (a hiccup in one run moves one pair, not the median).
        const { ranAhead: ahead0, fedAhead: fed0 } = engine.batchStats;
        const pairs = [];
        for (let i = 0; i < LATENT_PAIRS; i++) {
          const plain = await run(engine, text(LATENT_STEPS + 16));
          const pairTokenMs = plain.timings.decodeMs / plain.timings.tokenSteps;
          const r = await run(
            engine,
            text(LATENT_STEPS + 16, {
              assistantPrefix: '<|lvr_start|>',
              lvr: { strategy: 'steps', steps: LATENT_STEPS },
            }),
          );
          const { decodeMs, tokenSteps, latentSteps } = r.timings;
          if (!latentSteps) throw new Error('no latent steps ran');
          const latentMs = (decodeMs - tokenSteps * pairTokenMs) / latentSteps;
          pairs.push({
            latent_ms: latentMs,
            token_ms: pairTokenMs,
            ratio: latentMs / pairTokenMs,
            latentSteps,
            tokenSteps,
          });
        }
        const mid = [...pairs].sort((a, b) => a.ratio - b.ratio)[Math.floor(pairs.length / 2)];
        return {
          ...mid,
          token_ms_decode_b1: tokenMs,
          pairs,
          steps_run_ahead: engine.batchStats.ranAhead - ahead0,
          steps_fed_by_addon: engine.batchStats.fedAhead - fed0,
        };
      });
    // Every engine decodes the parity prompts: neither the step sizes nor the attention kernel nor int4's second
    // session may change a token (parity_report.py compares each with its bundle's default engine).
    if (deviceKv && !profile)
      await part(`parity_${bundle}`, async () => {
        // The parity prompts greedily, as torch_side.py's parity_fp16 decodes them (combine.py compares the two).
        const prompts: GenerationRequest['messages'][] = parity.texts.map((t) => [
          { role: 'user', content: t },
        ]);
        prompts.push([
          {
            role: 'user',
            content: [
              { type: 'image', image },
              { type: 'text', text: parity.image_text },
            ],
          },
        ]);
        const results = [];
        for (const messages of prompts) {
          const tokens: number[] = [];
          let promptTokens = 0;
          for await (const d of engine.generate({
            messages,
            sampling: { maxTokens: parity.max_tokens, ignoreEos: true, temperature: 0, repetitionPenalty: 1 },
          })) {
            tokens.push(...d.tokenIds);
            if (d.usage) promptTokens = d.usage.promptTokens;
          }
          results.push({ prompt_tokens: promptTokens, tokens });
        }
        return { prompts: results };
      });
    for (const streams of deviceKv ? STREAM_COUNTS : [])
      await part(`streams_${streams}`, async () => {
        // Twice: the first run also pays any first-use cost of its batch shapes.
        const runs = [];
        for (let k = 0; k < 2; k++) {
          const steps0 = { ...engine.batchStats };
          const prefills0 = { ...engine.prefillStats };
          const s0 = performance.now();
          const res = await Promise.all(Array.from({ length: streams }, () => run(engine, text(N_TOKENS))));
          const wallS = (performance.now() - s0) / 1000;
          const tokens = res.reduce((a, r) => a + r.tokens, 0);
          runs.push({
            aggregate_tok_s: tokens / wallS,
            wall_s_incl_prefill: wallS,
            tokens,
            ttft_ms_max: Math.max(...res.map((r) => r.firstMs)),
            // this run's decoder calls (the engine's counters run over its lifetime)
            step_calls: engine.batchStats.calls - steps0.calls,
            step_rows: engine.batchStats.rows - steps0.rows,
            steps_run_ahead: engine.batchStats.ranAhead - steps0.ranAhead,
            steps_fed_by_addon: engine.batchStats.fedAhead - steps0.fedAhead,
            max_ahead_depth: engine.batchStats.maxAheadDepth,
            prefill_calls: engine.prefillStats.calls - prefills0.calls,
            prefill_prompts: engine.prefillStats.prompts - prefills0.prompts,
            prefill_logits_left_out: engine.prefillStats.logitsLeftOut - prefills0.logitsLeftOut,
          });
        }
        return { ...runs[runs.length - 1], runs };
      });
    await engine.close();
    save();
  }
  save();
  console.log(`TS ${JSON.stringify(out)}`);
}

/**
 * TTFT of the image prompt on bundles that differ only in their vision graph's image input, both loaded, run in turn
 * (after one warm-up run each): medians of TTFT, preprocess, vision and prefill (which includes vision), and every run.
 */
async function visionForms(bundles: Record<string, string>, request: GenerationRequest) {
  const engines: Record<string, LvrEngine> = {};
  try {
    for (const [form, dir] of Object.entries(bundles))
      engines[form] = await LvrEngine.load(dir, {
        executionProvider: EP,
        verifyChecksums: false,
        maxBatchSize: 1,
        maxModelLen: 4096,
      });
    const runs: Record<string, Array<Record<string, number>>> = {};
    for (const [form, engine] of Object.entries(engines)) {
      await run(engine, request);
      runs[form] = [];
    }
    for (let i = 0; i < VISION_FORM_RUNS; i++)
      for (const [form, engine] of Object.entries(engines)) {
        const r = await run(engine, request);
        runs[form].push({
          ttft_ms: r.firstMs,
          preprocess_ms: r.timings.preprocessMs,
          vision_ms: r.timings.visionMs,
          prefill_ms: r.timings.prefillMs,
        });
      }
    const medians = Object.fromEntries(
      Object.entries(runs).map(([form, rs]) => [
        form,
        Object.fromEntries(Object.keys(rs[0]).map((k) => [k, median(rs.map((r) => r[k]))])),
      ]),
    );
    return { runs_each: VISION_FORM_RUNS, medians, runs };
  } finally {
    for (const engine of Object.values(engines)) await engine.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
