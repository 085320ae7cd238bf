// `npm run bench -- api [--bundle DIR] [--max-tokens N] [--requests-per-stream N] [--levels 1,4,16]`
// (each level runs at least 16 requests; each stream at least --requests-per-stream, default 4)
//
// Starts the API (apps/api/src/main.ts, the `npm start` wiring) on a bundle and drives streaming chat completions
// (one image + text, greedy, ignore_eos so every request generates exactly --max-tokens tokens) at concurrency 1, 4
// and 16. Reports requests/s, generated tokens/s, p50/p99 time to first token per level, the ratio of aggregate
// tokens/s at the highest level to single-stream, and, as the in-run baseline, the engine called directly
// in-process (no HTTP) on the same request. Prints a final `BENCH {json}` line.
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { LvrEngine, type GenerationRequest } from '@lvr/engine';

const ROOT = path.resolve(__dirname, '../..');

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

const bundle = path.resolve(arg('bundle', path.join(ROOT, 'models', 'lvr-tiny-demo')));
const maxTokens = Number(arg('max-tokens', '32'));
const perStream = Number(arg('requests-per-stream', '4'));
const levels = arg('levels', '1,4,16').split(',').map(Number);
const MODEL = 'bench-model';

interface Sample {
  ttftMs: number;
  totalMs: number;
  tokens: number;
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d;

async function startServer(): Promise<{ url: string; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, ['-r', '@swc-node/register', 'apps/api/src/main.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      HOST: '127.0.0.1',
      PORT: '0',
      LVR_MODELS: `${MODEL}=${bundle}`,
      LVR_MAX_CONCURRENT: String(Math.max(...levels)),
      LVR_MAX_QUEUE: '256',
      LVR_MAX_COMPLETION_TOKENS: String(Math.max(maxTokens, 16)),
      LVR_LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /"msg":"listening","url":"([^"]+)"/.exec(out);
      if (m) resolve(m[1]);
      if (out.length > 1e6) out = out.slice(-1e5);
    });
    child.on('exit', (code) => reject(new Error(`API exited (${code})`)));
  });
  for (let i = 0; ; i++) {
    const r = await fetch(`${url}/health/ready`).catch(() => undefined);
    if (r?.status === 200) break;
    if (i > 1200) throw new Error('API never became ready');
    await new Promise((res) => setTimeout(res, 100));
  }
  return {
    url,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

async function streamOnce(url: string, body: unknown): Promise<Sample> {
  const start = performance.now();
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (res.status !== 200 || !res.body) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  let ttft = NaN;
  let tokens = 0;
  let buffer = '';
  const decoder = new TextDecoder();
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let sep: number;
    while ((sep = buffer.indexOf('\n\n')) >= 0) {
      const frame = buffer.slice(0, sep);
      buffer = buffer.slice(sep + 2);
      if (!frame.startsWith('data: ') || frame === 'data: [DONE]') continue;
      const data = JSON.parse(frame.slice(6));
      // The first frames (role deltas) are written when the first token exists, so the first frame = first token.
      if (Number.isNaN(ttft)) ttft = performance.now() - start;
      if (data.usage && data.choices.length === 0) tokens = data.usage.completion_tokens;
    }
  }
  return { ttftMs: ttft, totalMs: performance.now() - start, tokens };
}

async function level(url: string, body: unknown, concurrency: number) {
  const samples: Sample[] = [];
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = 0; i < Math.max(perStream, Math.ceil(16 / concurrency)); i++)
        samples.push(await streamOnce(url, body));
    }),
  );
  const wallS = (performance.now() - start) / 1000;
  const tokens = samples.reduce((s, x) => s + x.tokens, 0);
  return {
    concurrency,
    requests: samples.length,
    requests_per_s: round(samples.length / wallS),
    tokens_per_s: round(tokens / wallS, 1),
    ttft_p50_ms: round(
      percentile(
        samples.map((s) => s.ttftMs),
        50,
      ),
      1,
    ),
    ttft_p99_ms: round(
      percentile(
        samples.map((s) => s.ttftMs),
        99,
      ),
      1,
    ),
    e2e_p50_ms: round(
      percentile(
        samples.map((s) => s.totalMs),
        50,
      ),
      1,
    ),
  };
}

async function engineBaseline(request: GenerationRequest, runs: number) {
  const engine = await LvrEngine.load(bundle);
  try {
    const samples: Sample[] = [];
    const warmup = 3;
    for (let i = 0; i < runs + warmup; i++) {
      const start = performance.now();
      let ttft = NaN;
      let tokens = 0;
      for await (const d of engine.generate(request)) {
        if (d.tokenIds.length > 0 && Number.isNaN(ttft)) ttft = performance.now() - start;
        if (d.usage) tokens = d.usage.completionTokens;
      }
      if (i >= warmup) samples.push({ ttftMs: ttft, totalMs: performance.now() - start, tokens });
    }
    const totalS = samples.reduce((s, x) => s + x.totalMs, 0) / 1000;
    return {
      tokens_per_s: round(samples.reduce((s, x) => s + x.tokens, 0) / totalS, 1),
      ttft_p50_ms: round(
        percentile(
          samples.map((s) => s.ttftMs),
          50,
        ),
        1,
      ),
    };
  } finally {
    await engine.close();
  }
}

async function main(): Promise<void> {
  const png = await sharp({
    create: { width: 112, height: 84, channels: 3, background: { r: 30, g: 120, b: 200 } },
  })
    .png()
    .toBuffer();
  const prompt = 'Describe the image in one sentence.';
  const body = {
    model: MODEL,
    stream: true,
    stream_options: { include_usage: true },
    max_tokens: maxTokens,
    temperature: 0,
    ignore_eos: true,
    messages: [
      {
        role: 'user',
        content: [
          { type: 'image_url', image_url: { url: `data:image/png;base64,${png.toString('base64')}` } },
          { type: 'text', text: prompt },
        ],
      },
    ],
  };
  const baseline = await engineBaseline(
    {
      messages: [
        {
          role: 'user',
          content: [
            { type: 'image', image: new Uint8Array(png) },
            { type: 'text', text: prompt },
          ],
        },
      ],
      sampling: { temperature: 0, maxTokens, ignoreEos: true },
    },
    Math.max(perStream, 16),
  );
  const server = await startServer();
  try {
    for (let i = 0; i < 4; i++) await streamOnce(server.url, body); // warm-up (ORT sessions, JIT)
    const results = [];
    for (const c of levels) {
      const r = await level(server.url, body, c);
      results.push(r);
      console.log(
        `concurrency ${String(c).padStart(2)}: ${r.requests_per_s} req/s, ${r.tokens_per_s} tok/s, ` +
          `TTFT p50 ${r.ttft_p50_ms} ms p99 ${r.ttft_p99_ms} ms (${r.requests} requests)`,
      );
    }
    const single = results.find((r) => r.concurrency === 1) ?? results[0];
    const top = results[results.length - 1];
    console.log(
      `engine direct (no HTTP), single stream: ${baseline.tokens_per_s} tok/s, TTFT p50 ${baseline.ttft_p50_ms} ms`,
    );
    const summary = {
      bench: 'api',
      bundle: path.relative(ROOT, bundle) || bundle,
      max_tokens: maxTokens,
      requests_per_stream: perStream,
      cpus: os.cpus().length,
      levels: results,
      scaling_ratio: round(top.tokens_per_s / single.tokens_per_s, 2),
      scaling_ratio_levels: `${top.concurrency}/${single.concurrency}`,
      baseline_engine_direct: baseline,
      api_overhead_single_stream: round(single.tokens_per_s / baseline.tokens_per_s, 2),
    };
    console.log(`BENCH ${JSON.stringify(summary)}`);
  } finally {
    await server.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
