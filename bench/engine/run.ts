/**
 * `npm run bench -- engine [tiny|mid ...] [--threads=N]`: the same bundle in the TS engine (onnxruntime-node, CPU EP)
 * and in the PyTorch reference on this CPU, with the same intra-op thread count. Reports image-prompt prefill ms
 * (vision included), decode tokens/s (token-input steps only), latent-step ms (latent-input steps only) and
 * TS/PyTorch ratios; the last line is `BENCH {json}`. Both sides time the same spans (see torch_bench.py) and their
 * latent runs must have run the same number of latent steps. `cpu` holds the process CPU time of the same steps (and
 * of time-to-first-token, prompt preparation included): on a machine other work shares, wall time mostly measures
 * waiting for a core, while CPU time still measures the work.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { LvrEngine } from '@lvr/engine';
import { median } from '../stats';

const ROOT = path.resolve(__dirname, '../..');
const REPEATS = 5;

/** Wall-clock figures plus the process's CPU time for the same spans (user + system, every thread). */
interface Side {
  prefill_ms: number;
  decode_tok_s: number;
  latent_step_ms: number;
  cpu: { ttft_ms: number; token_step_ms: number; latent_step_ms: number };
}

interface Span {
  wallMs: number;
  cpuMs: number;
  latentInput: boolean;
}

function mean(values: number[]): number {
  return values.length ? values.reduce((a, b) => a + b, 0) / values.length : NaN;
}

function cpuMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}

async function tsSide(
  bundle: string,
  image: Buffer,
  threads: number,
): Promise<Side & { latent_steps_per_run: number }> {
  const engine = await LvrEngine.load(bundle, { threads });
  const messages = [
    {
      role: 'user' as const,
      content: [
        { type: 'image' as const, image },
        { type: 'text' as const, text: 'Describe it.' },
      ],
    },
  ];
  // The engine yields one delta per decode step; a delta's `latent` says the next forward takes a latent input, so
  // the span up to the next delta is that step (forward, input embedding, sampling), as torch_bench.py times it.
  const run = async (prefix: string, n: number, steps: number) => {
    let timings;
    const spans: Span[] = [];
    const cpuStart = cpuMs();
    let first: number | undefined;
    let last: { wall: number; cpu: number; latent: boolean } | undefined;
    for await (const d of engine.generate({
      messages,
      assistantPrefix: prefix,
      sampling: { maxTokens: n, ignoreEos: true },
      lvr: { steps },
    })) {
      const mark = { wall: performance.now(), cpu: cpuMs(), latent: d.latent };
      if (last)
        spans.push({ wallMs: mark.wall - last.wall, cpuMs: mark.cpu - last.cpu, latentInput: last.latent });
      first ??= mark.cpu;
      last = mark;
      if (d.finishReason) timings = d.timings!;
    }
    const ofKind = (latentInput: boolean) => spans.filter((x) => x.latentInput === latentInput);
    return {
      // Vision encoder + embedding + the decoder's prompt forward, as on the PyTorch side.
      prefillMs: timings!.prefillMs,
      tokenStepMs: mean(ofKind(false).map((x) => x.wallMs)),
      latentStepMs: mean(ofKind(true).map((x) => x.wallMs)),
      // Prompt preparation (tokenizer, image decode and resize), vision, prefill and the first sampling.
      ttftCpuMs: first! - cpuStart,
      tokenStepCpuMs: mean(ofKind(false).map((x) => x.cpuMs)),
      latentStepCpuMs: mean(ofKind(true).map((x) => x.cpuMs)),
      latentSteps: timings!.latentSteps,
    };
  };
  await run('', 4, 8);
  // Medians of REPEATS runs, as on the PyTorch side: single runs on a shared 2-core machine are noisy.
  const plain = [];
  for (let i = 0; i < REPEATS; i++) plain.push(await run('', 64, 8));
  const latent = [];
  for (let i = 0; i < REPEATS; i++) latent.push(await run('<|lvr_start|>', 24, 16));
  await engine.close();
  return {
    prefill_ms: median(plain.map((r) => r.prefillMs)),
    decode_tok_s: 1000 / median(plain.map((r) => r.tokenStepMs)),
    latent_step_ms: median(latent.map((r) => r.latentStepMs)),
    cpu: {
      ttft_ms: median(plain.map((r) => r.ttftCpuMs)),
      token_step_ms: median(plain.map((r) => r.tokenStepCpuMs)),
      latent_step_ms: median(latent.map((r) => r.latentStepCpuMs)),
    },
    latent_steps_per_run: latent[0].latentSteps,
  };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const threadsArg = args.find((a) => a.startsWith('--threads='));
  // Both sides get the same intra-op thread count (default: every core).
  const threads = threadsArg ? Number.parseInt(threadsArg.slice('--threads='.length), 10) : os.cpus().length;
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`bad ${threadsArg}`);
  const named = args.filter((a) => !a.startsWith('--'));
  const sizes = named.length ? named : ['tiny', 'mid'];
  const python = process.env.LVR_PYTHON;
  if (!python) throw new Error('LVR_PYTHON is not set (npm run bench reads it from the stack env)');
  const results: Record<string, unknown> = {};
  for (const size of sizes) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `lvr-bench-${size}-`));
    const image = await sharp({
      create: { width: 224, height: 224, channels: 3, background: { r: 90, g: 140, b: 200 } },
    })
      .png()
      .toBuffer();
    const imgPath = path.join(dir, 'image.png');
    fs.writeFileSync(imgPath, image);
    const py = spawnSync(
      python,
      [path.join(__dirname, 'torch_bench.py'), dir, size, imgPath, String(threads)],
      {
        cwd: ROOT,
        env: { ...process.env, PYTHONPATH: path.join(ROOT, 'workers') },
        encoding: 'utf8',
      },
    );
    if (py.status !== 0) throw new Error(`torch_bench.py failed: ${py.stderr}`);
    const torch = JSON.parse(py.stdout) as Side & { prompt_tokens: number; latent_steps_per_run: number };
    const ts = await tsSide(path.join(dir, 'bundle'), image, threads);
    if (ts.latent_steps_per_run !== torch.latent_steps_per_run || ts.latent_steps_per_run === 0)
      throw new Error(
        `latent runs differ: TS ran ${ts.latent_steps_per_run} latent steps, PyTorch ${torch.latent_steps_per_run}`,
      );
    const row = {
      ts,
      pytorch: torch,
      ratio_ts_over_pytorch: {
        prefill_ms: ts.prefill_ms / torch.prefill_ms,
        decode_tok_s: ts.decode_tok_s / torch.decode_tok_s,
        latent_step_ms: ts.latent_step_ms / torch.latent_step_ms,
        cpu_ttft_ms: ts.cpu.ttft_ms / torch.cpu.ttft_ms,
        cpu_token_step_ms: ts.cpu.token_step_ms / torch.cpu.token_step_ms,
        cpu_latent_step_ms: ts.cpu.latent_step_ms / torch.cpu.latent_step_ms,
      },
    };
    console.log(`[${size}] prompt ${torch.prompt_tokens} tokens`, JSON.stringify(row));
    results[size] = row;
    fs.rmSync(dir, { recursive: true, force: true });
  }
  console.log(
    `BENCH ${JSON.stringify({ bench: 'engine', cpu: os.cpus()[0]?.model, cores: os.cpus().length, threads, loadavg: os.loadavg(), results })}`,
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
