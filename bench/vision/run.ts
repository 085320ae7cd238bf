/**
 * `npm run bench -- vision [--threads=N] [--layers=N]`: the engine's time from a one-image request (1036 px, 5,476
 * patches) to its image features: host preprocessing (`timings.preprocessMs`: decode, resize, M-RoPE) plus the
 * vision call (`timings.visionMs`: host inputs, the vision graph on the CPU EP, features back), and the first token,
 * for three vision graphs of one model loaded in one process and run in turn: the exporter's (`bytes`: the image's
 * uint8 `image_bytes`, pixel values computed in the graph, MatMul patch embedding), the graph before it (`floats`:
 * float32 `pixel_values` computed on the host, MatMul) and the one before that (`conv`: float32, Conv3d patch embedding).
 * The bundles come from bench/vision/bundles.py (a 3B-shaped vision tower of 2 windowed blocks by default). Last line:
 * `BENCH {json}`.
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

interface ImageTimes {
  preprocess: number;
  vision: number;
  /** preprocess + vision: what the graph's input form changes. */
  image: number;
  firstToken: number;
}

async function firstToken(engine: LvrEngine, request: GenerationRequest) {
  const startedAt = performance.now();
  for await (const d of engine.generate(request))
    if (d.finishReason) {
      const { preprocessMs, visionMs } = d.timings!;
      const times: ImageTimes = {
        preprocess: preprocessMs,
        vision: visionMs,
        image: preprocessMs + visionMs,
        firstToken: performance.now() - startedAt,
      };
      return { tokenIds: d.tokenIds, times };
    }
  throw new Error('the generation ended without a finish reason');
}

const FORMS = ['bytes', 'floats', 'conv'] as const;
type Form = (typeof FORMS)[number];

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
    const bundles = JSON.parse(made.stdout.trim().split('\n').pop()!) as Record<Form, string>;
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
    const engines = {} as Record<Form, LvrEngine>;
    for (const form of FORMS) engines[form] = await LvrEngine.load(bundles[form], { threads });
    try {
      const runs = Object.fromEntries(FORMS.map((form) => [form, [] as ImageTimes[]])) as Record<
        Form,
        ImageTimes[]
      >;
      const tokens = {} as Record<Form, number[]>;
      for (const form of FORMS) tokens[form] = (await firstToken(engines[form], request)).tokenIds;
      for (const form of FORMS)
        if (tokens[form].join() !== tokens.bytes.join())
          throw new Error(`the ${form} graph picks another first token: ${tokens[form]} vs ${tokens.bytes}`);
      for (let i = 0; i < REPEATS; i++)
        for (const form of FORMS) runs[form].push((await firstToken(engines[form], request)).times);
      const medians = Object.fromEntries(
        FORMS.map((form) => [
          form,
          Object.fromEntries(
            (['preprocess', 'vision', 'image', 'firstToken'] as const).map((k) => [
              k,
              median(runs[form].map((r) => r[k])),
            ]),
          ) as unknown as ImageTimes,
        ]),
      ) as Record<Form, ImageTimes>;
      const result = {
        bench: 'vision',
        image_px: 1036,
        vision_layers: layers,
        threads,
        median_ms: medians,
        runs,
        // The graph's input form: preprocessing + vision call against the previous graph's.
        image_ms_floats_over_bytes: medians.floats.image / medians.bytes.image,
        first_token_floats_over_bytes: medians.floats.firstToken / medians.bytes.firstToken,
        // The patch embedding: Conv3d against MatMul, both on float pixel values.
        vision_ms_conv_over_floats: medians.conv.vision / medians.floats.vision,
      };
      console.log(
        `one 1036 px image, ${layers} vision blocks, ${threads} threads (medians of ${REPEATS}, ms):`,
      );
      for (const form of FORMS) {
        const m = medians[form];
        console.log(
          `  ${form.padEnd(6)} preprocess ${m.preprocess.toFixed(1)} + vision ${m.vision.toFixed(1)} = ` +
            `${m.image.toFixed(1)}; first token ${m.firstToken.toFixed(1)}`,
        );
      }
      console.log(`BENCH ${JSON.stringify(result)}`);
    } finally {
      for (const form of FORMS) await engines[form].close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
