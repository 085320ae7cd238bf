/**
 * Score a bundle on a fresh split of the synthetic generator through the TypeScript engine (the serving path):
 *
 *   node -r @swc-node/register scripts/demo/check-bundle.ts BUNDLE_DIR [--count 64] [--steps 4] [--min 0.45]
 *
 * The `check` split shares the training seed (13) but no image (the split name is part of every image's seed).
 * Greedy decoding, LVR `steps`; prints accuracy with a Wilson 95% interval and exits 1 below `--min`. Meant to
 * become the `npm test` check of the shipped demo model once a bundle that learned the task ships (README, "Demo
 * model").
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { generateItem, multipleChoicePrompt } from '../../libs/data/src';
import { LvrEngine } from '../../libs/engine/src';

function answerLetter(text: string): string | null {
  const found = [...text.matchAll(/<answer>(.*?)<\/answer/gs)];
  const words = found.length ? found[found.length - 1][1].trim().split(/\s+/) : [];
  return words[0] ? words[0][0].toUpperCase() : null;
}

function wilson(k: number, n: number, z = 1.96): [number, number] {
  const p = k / n;
  const den = 1 + (z * z) / n;
  const mid = (p + (z * z) / (2 * n)) / den;
  const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / den;
  return [Math.max(0, mid - half), Math.min(1, mid + half)];
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      count: { type: 'string', default: '64' },
      steps: { type: 'string', default: '4' },
      min: { type: 'string', default: '0.45' },
      seed: { type: 'string', default: '13' },
    },
  });
  if (positionals.length !== 1) throw new Error('usage: check-bundle.ts BUNDLE_DIR [--count N] [--steps S]');
  const engine = await LvrEngine.load(path.resolve(positionals[0]));
  const n = Number(values.count);
  let correct = 0;
  try {
    for (let i = 0; i < n; i++) {
      const { record, png } = generateItem('check', i, { seed: Number(values.seed) });
      let text = '';
      for await (const d of engine.generate({
        messages: [
          {
            role: 'user',
            content: [
              { type: 'image', image: png },
              { type: 'text', text: multipleChoicePrompt(record.question, record.options) },
            ],
          },
        ],
        sampling: { temperature: 0, maxTokens: 48, skipSpecialTokens: false },
        lvr: { strategy: 'steps', steps: Number(values.steps) },
      }))
        text += d.text;
      if (answerLetter(text) === record.answer) correct++;
    }
  } finally {
    await engine.close();
  }
  const [lo, hi] = wilson(correct, n);
  process.stdout.write(`accuracy ${(correct / n).toFixed(3)} [${lo.toFixed(3)}, ${hi.toFixed(3)}] n=${n}\n`);
  if (correct / n < Number(values.min)) process.exitCode = 1;
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 2;
});
