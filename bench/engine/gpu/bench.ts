/**
 * GPU bench: onnxruntime-node (EP from argv, default webgpu) on WORK/bundle vs PyTorch CUDA fp16 on WORK/ckpt.
 * Prints `BENCH {json}` with decode tokens/s and TTFT (image prompt) for both and the card name.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { LvrEngine } from '@lvr/engine';
import type { ExecutionProviderName } from '@lvr/engine';

async function main(): Promise<void> {
  const [work, ep = 'webgpu'] = process.argv.slice(2);
  const image = await sharp({
    create: { width: 448, height: 448, channels: 3, background: { r: 90, g: 140, b: 200 } },
  })
    .png()
    .toBuffer();
  fs.writeFileSync(path.join(work, 'image.png'), image);
  const engine = await LvrEngine.load(path.join(work, 'bundle'), {
    executionProvider: ep as ExecutionProviderName,
    verifyChecksums: false,
  });
  const messages = [
    {
      role: 'user' as const,
      content: [
        { type: 'image' as const, image },
        { type: 'text' as const, text: 'Describe it.' },
      ],
    },
  ];
  const run = async (n: number) => {
    const t0 = performance.now();
    let ttft = 0;
    let timings;
    for await (const d of engine.generate({ messages, sampling: { maxTokens: n, ignoreEos: true } })) {
      if (!ttft) ttft = performance.now() - t0;
      if (d.finishReason) timings = d.timings!;
    }
    return { ttft_ms: ttft, decode_tok_s: (timings!.tokenSteps / timings!.decodeMs) * 1000 };
  };
  await run(4);
  const ts = await run(128);
  await engine.close();
  const py = spawnSync(process.env.LVR_PYTHON!, [path.join(__dirname, 'torch_cuda.py'), work], {
    encoding: 'utf8',
    env: { ...process.env, PYTHONPATH: 'workers' },
  });
  if (py.status !== 0) throw new Error(py.stderr);
  const torch = JSON.parse(py.stdout);
  const card = fs.readFileSync(path.join(work, 'card.txt'), 'utf8').trim();
  console.log(
    `BENCH ${JSON.stringify({ bench: 'engine-gpu', card, ep, ts, torch_cuda: torch, ratio_decode: ts.decode_tok_s / torch.decode_tok_s })}`,
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
