/**
 * `npm run bench -- engine [tiny|mid ...]`: the same bundle in the TS engine (onnxruntime-node, CPU EP) and in the
 * PyTorch reference on this CPU. Reports image-prompt prefill ms, decode tokens/s, latent-step ms and TS/PyTorch
 * ratios; the last line is `BENCH {json}`.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { LvrEngine } from '@lvr/engine';

const ROOT = path.resolve(__dirname, '../..');
const REPEATS = 5;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

interface Side {
  prefill_ms: number;
  decode_tok_s: number;
  latent_step_ms: number;
}

async function tsSide(bundle: string, image: Buffer): Promise<Side> {
  const engine = await LvrEngine.load(bundle);
  const messages = [
    {
      role: 'user' as const,
      content: [
        { type: 'image' as const, image },
        { type: 'text' as const, text: 'Describe it.' },
      ],
    },
  ];
  const run = async (prefix: string, n: number, steps: number) => {
    let timings;
    for await (const d of engine.generate({
      messages,
      assistantPrefix: prefix,
      sampling: { maxTokens: n, ignoreEos: true },
      lvr: { steps },
    })) {
      if (d.finishReason) timings = d.timings!;
    }
    return timings!;
  };
  await run('', 4, 8);
  // Medians of REPEATS runs, as on the PyTorch side: single runs on a shared 2-core machine are noisy.
  const runs: Awaited<ReturnType<typeof run>>[] = [];
  for (let i = 0; i < REPEATS; i++) runs.push(await run('', 64, 8));
  // Latent-step time: same decode with 16 latent steps vs without, per latent step.
  const withLatent = await run('<|lvr_start|>', 24, 16);
  const plain = await run('', 24, 16);
  await engine.close();
  const perStep = (x: (typeof runs)[number]) => x.decodeMs / (x.tokenSteps + x.latentSteps);
  return {
    prefill_ms: median(runs.map((t) => t.prefillMs)),
    decode_tok_s: median(runs.map((t) => (t.tokenSteps / t.decodeMs) * 1000)),
    latent_step_ms: withLatent.latentSteps ? perStep(withLatent) : perStep(plain),
  };
}

async function main(): Promise<void> {
  const sizes = process.argv.slice(2).length ? process.argv.slice(2) : ['tiny', 'mid'];
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
    const py = spawnSync(python, [path.join(__dirname, 'torch_bench.py'), dir, size, imgPath], {
      cwd: ROOT,
      env: { ...process.env, PYTHONPATH: path.join(ROOT, 'workers') },
      encoding: 'utf8',
    });
    if (py.status !== 0) throw new Error(`torch_bench.py failed: ${py.stderr}`);
    const torch = JSON.parse(py.stdout) as Side & { prompt_tokens: number };
    const ts = await tsSide(path.join(dir, 'bundle'), image);
    const row = {
      ts,
      pytorch: torch,
      ratio_ts_over_pytorch: {
        prefill_ms: ts.prefill_ms / torch.prefill_ms,
        decode_tok_s: ts.decode_tok_s / torch.decode_tok_s,
        latent_step_ms: ts.latent_step_ms / torch.latent_step_ms,
      },
    };
    console.log(`[${size}] prompt ${torch.prompt_tokens} tokens`, JSON.stringify(row));
    results[size] = row;
    fs.rmSync(dir, { recursive: true, force: true });
  }
  console.log(
    `BENCH ${JSON.stringify({ bench: 'engine', cpu: os.cpus()[0]?.model, cores: os.cpus().length, results })}`,
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
