// `npm run bench -- cold-start [--runs N] [--bundle DIR]`
//
// What a scaled-to-zero API pod costs before it answers: from process start to /health/ready 200 and to the first
// chat completion, with the bundle in MinIO (LVR_MODELS=…=s3://…, an empty bundle cache each run: what a fresh pod
// sees) against the baseline of the same bundle in a local folder (baked into the image). Medians of --runs (default
// 3) cold starts per side; the ratio is MinIO/local. Needs the stack's MinIO (LVR_S3_*). Prints `BENCH {json}`.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ObjectStore, objectStoreConfigFromEnv } from '@lvr/storage';
import { median } from '../stats';

const ROOT = path.resolve(__dirname, '../..');
const MODEL = 'lvr-tiny-demo';
const RED_SQUARE =
  'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAABwAAAAcCAIAAAD9b0jDAAAACXBIWXMAAAPoAAAD6AG1e1JrAAAAMElEQVRIiWO4I2JDdcQwauid0TAVGU1SNqM56s5ogSIyWp7ajFYnd0ZrU5Hh3ZgAAK4rlu6QiyZkAAAAAElFTkSuQmCC';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

const runs = Number(arg('runs', '3'));
const bundle = path.resolve(arg('bundle', path.join(ROOT, 'models', MODEL)));

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

interface ColdStart {
  readyMs: number;
  firstCompletionMs: number;
}

/** One cold start: a new API process with an empty HOME (so an empty bundle cache). */
async function coldStart(models: string): Promise<ColdStart> {
  const port = await freePort();
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'lvr-cold-'));
  const started = performance.now();
  const api = spawn(process.execPath, ['-r', '@swc-node/register', path.join(ROOT, 'apps/api/src/main.ts')], {
    cwd: ROOT,
    env: {
      ...process.env,
      HOME: home,
      HOST: '127.0.0.1',
      PORT: String(port),
      LVR_MODELS: models,
      LVR_LOG_LEVEL: 'error',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  api.stderr.on('data', (d) => (stderr += d));
  try {
    const base = `http://127.0.0.1:${port}`;
    let readyMs = 0;
    while (!readyMs) {
      if (api.exitCode !== null) throw new Error(`the API exited: ${stderr}`);
      const status = await fetch(`${base}/health/ready`).then(
        (r) => r.status,
        () => 0,
      );
      if (status === 200) readyMs = performance.now() - started;
      else await new Promise((r) => setTimeout(r, 20));
    }
    const response = await fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: MODEL,
        max_tokens: 8,
        temperature: 0,
        messages: [
          {
            role: 'user',
            content: [
              { type: 'image_url', image_url: { url: RED_SQUARE } },
              { type: 'text', text: 'Colour?' },
            ],
          },
        ],
      }),
    });
    if (response.status !== 200)
      throw new Error(`chat completion: ${response.status} ${await response.text()}`);
    await response.json();
    return { readyMs, firstCompletionMs: performance.now() - started };
  } finally {
    api.kill('SIGTERM');
    await new Promise((r) => api.once('close', r));
    fs.rmSync(home, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const store = new ObjectStore(objectStoreConfigFromEnv());
  const bucket = `bench-cold-${Date.now().toString(36)}`;
  await store.ensureBucket(bucket);
  await store.uploadDirectory(bundle, bucket, MODEL, ['_COMPLETE']);
  const sides = { local: `${MODEL}=${bundle}`, minio: `${MODEL}=s3://${bucket}/${MODEL}` };
  const samples: Record<keyof typeof sides, ColdStart[]> = { local: [], minio: [] };
  try {
    for (let i = 0; i < runs; i++) {
      // Alternate the sides so machine load drifts affect both alike.
      for (const side of ['local', 'minio'] as const) {
        const sample = await coldStart(sides[side]);
        samples[side].push(sample);
        process.stdout.write(
          `${side} run ${i + 1}: ready ${sample.readyMs.toFixed(0)} ms, first completion ${sample.firstCompletionMs.toFixed(0)} ms\n`,
        );
      }
    }
  } finally {
    await store.removePrefix(bucket, '');
  }
  const summary = (side: keyof typeof sides) => ({
    readyMs: Math.round(median(samples[side].map((s) => s.readyMs))),
    firstCompletionMs: Math.round(median(samples[side].map((s) => s.firstCompletionMs))),
  });
  const local = summary('local');
  const minio = summary('minio');
  const bytes = fs.readdirSync(bundle).reduce((n, f) => n + fs.statSync(path.join(bundle, f)).size, 0);
  process.stdout.write(
    `BENCH ${JSON.stringify({
      bench: 'cold-start',
      bundle: MODEL,
      bundleBytes: bytes,
      runs,
      minio,
      baseline: { local },
      ratio: {
        ready: +(minio.readyMs / local.readyMs).toFixed(2),
        firstCompletion: +(minio.firstCompletionMs / local.firstCompletionMs).toFixed(2),
      },
    })}\n`,
  );
}

main().catch((error) => {
  process.stderr.write(`${(error as Error).stack}\n`);
  process.exit(1);
});
