/**
 * `npm run bench -- vision [--threads=N] [--layers=N]`: the engine's vision time (`timings.visionMs`: host inputs,
 * the vision graph on the CPU EP, features back) for a one-image prompt (1036 px, 5,476 patches) with the exporter's
 * vision graph, whose patch embedding is a MatMul, against the same bundle with the Conv3d patch embedding it was
 * exported with before (baseline), both engines loaded in one process and run in turn. The bundles come from
 * bench/vision/bundles.py (a 3B-shaped vision tower of 2 windowed blocks by default). Last line: `BENCH {json}`.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { LvrEngine, type GenerationRequest } from '@lvr/engine';
import { median } from '../stats';

const ROOT = path.resolve(__dirname, '../..');
const REPEATS = 5;

function flag(name: string, fallback: number): number {
  const arg = process.argv.find((a) => a.startsWith(`--${name}=`));
  return arg ? Number(arg.split('=')[1]) : fallback;
}

async function gradientPng(size: number): Promise<Buffer> {
  const raw = Buffer.alloc(size * size * 3);
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++) raw.set([x % 256, y % 256, (x + y) % 256], (y * size + x) * 3);
  return sharp(raw, { raw: { width: size, height: size, channels: 3 } })
    .png()
    .toBuffer();
}

async function firstToken(engine: LvrEngine, request: GenerationRequest) {
  for await (const d of engine.generate(request))
    if (d.finishReason) return { tokenIds: d.tokenIds, visionMs: d.timings!.visionMs };
  throw new Error('the generation ended without a finish reason');
}

async function main(): Promise<void> {
  const threads = flag('threads', os.availableParallelism());
  const layers = flag('layers', 2);
  const python = process.env.LVR_PYTHON;
  if (!python) throw new Error('LVR_PYTHON is not set (npm run bench sets it from the stack)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lvr-bench-vision-'));
  try {
    const made = spawnSync(python, [path.join(ROOT, 'bench/vision/bundles.py'), dir, String(layers)], {
      env: { ...process.env, PYTHONPATH: path.join(ROOT, 'workers') },
      encoding: 'utf8',
    });
    if (made.status !== 0) throw new Error(`bundles.py failed: ${made.stderr}`);
    const bundles = JSON.parse(made.stdout.trim().split('\n').pop()!) as { matmul: string; conv: string };
    const request: GenerationRequest = {
      messages: [
        {
          role: 'user',
          content: [
            { type: 'image', image: await gradientPng(1036) },
            { type: 'text', text: 'Describe it.' },
          ],
        },
      ],
      sampling: { maxTokens: 1, temperature: 0 },
    };
    const load = (bundle: string) => LvrEngine.load(bundle, { threads });
    const engines = { matmul: await load(bundles.matmul), conv: await load(bundles.conv) };
    try {
      const times: Record<keyof typeof engines, number[]> = { matmul: [], conv: [] };
      const tokens: Record<string, number[]> = {};
      for (const [name, engine] of Object.entries(engines))
        tokens[name] = (await firstToken(engine, request)).tokenIds;
      if (tokens.matmul.join() !== tokens.conv.join())
        throw new Error(`the two graphs pick different first tokens: ${tokens.matmul} vs ${tokens.conv}`);
      for (let i = 0; i < REPEATS; i++)
        for (const name of ['matmul', 'conv'] as const)
          times[name].push((await firstToken(engines[name], request)).visionMs);
      const result = {
        bench: 'vision',
        image_px: 1036,
        vision_layers: layers,
        threads,
        vision_ms: { matmul: median(times.matmul), conv_baseline: median(times.conv) },
        runs: times,
        speedup: median(times.conv) / median(times.matmul),
      };
      console.log(`vision graph, 1036 px image, ${layers} blocks, ${threads} threads:`);
      console.log(`  MatMul patch embedding ${result.vision_ms.matmul.toFixed(1)} ms`);
      console.log(`  Conv3d patch embedding ${result.vision_ms.conv_baseline.toFixed(1)} ms (baseline)`);
      console.log(`BENCH ${JSON.stringify(result)}`);
    } finally {
      await engines.matmul.close();
      await engines.conv.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
