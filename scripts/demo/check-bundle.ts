/**
 * Score a bundle on a fresh split of the synthetic generator through the TypeScript engine (the serving path):
 *
 *   node -r @swc-node/register scripts/demo/check-bundle.ts BUNDLE_DIR [--count 64] [--steps 4] [--min 0.45]
 *     [--levels single,pair]
 *
 * The `check` split shares the training seed (13) but no image (the split name is part of every image's seed).
 * Greedy decoding, LVR `steps` (0: LVR off); prints accuracy with a Wilson 95% interval and exits 1 below `--min`.
 * `scoreBundle` is also the `npm test` check of the shipped demo model (tests/demo/shipped-bundle.test.ts).
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { generateItem, multipleChoicePrompt, type SceneLevel } from '../../libs/data/src';
import { LvrEngine } from '../../libs/engine/src';

export function answerLetter(text: string): string | null {
  const found = [...text.matchAll(/<answer>(.*?)<\/answer/gs)];
  const words = found.length ? found[found.length - 1][1].trim().split(/\s+/) : [];
  return words[0] ? words[0][0].toUpperCase() : null;
}

export function wilson(k: number, n: number, z = 1.96): [number, number] {
  const p = k / n;
  const den = 1 + (z * z) / n;
  const mid = (p + (z * z) / (2 * n)) / den;
  const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / den;
  return [Math.max(0, mid - half), Math.min(1, mid + half)];
}

export interface BundleScore {
  correct: number;
  n: number;
  accuracy: number;
  wilson95: [number, number];
  unparsed: number;
  answers: string[];
}

/** Greedy answers of the bundle at LVR `steps` to items 0..count-1 of a fresh synthetic split, scored by letter. */
export async function scoreBundle(
  bundle: string,
  opts: { count: number; steps: number; seed?: number; split?: string; levels?: readonly SceneLevel[] },
): Promise<BundleScore> {
  const engine = await LvrEngine.load(path.resolve(bundle));
  let correct = 0;
  let unparsed = 0;
  const answers: string[] = [];
  try {
    for (let i = 0; i < opts.count; i++) {
      const { record, png } = generateItem(opts.split ?? 'check', i, {
        seed: opts.seed ?? 13,
        difficulties: opts.levels,
      });
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
        lvr: opts.steps === 0 ? { strategy: 'none' } : { strategy: 'steps', steps: opts.steps },
      }))
        text += d.text;
      answers.push(text);
      const got = answerLetter(text);
      if (got === null) unparsed++;
      if (got === record.answer) correct++;
    }
  } finally {
    await engine.close();
  }
  return {
    correct,
    n: opts.count,
    accuracy: correct / opts.count,
    wilson95: wilson(correct, opts.count),
    unparsed,
    answers,
  };
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      count: { type: 'string', default: '64' },
      steps: { type: 'string', default: '4' },
      min: { type: 'string', default: '0.45' },
      seed: { type: 'string', default: '13' },
      levels: { type: 'string' },
    },
  });
  if (positionals.length !== 1) throw new Error('usage: check-bundle.ts BUNDLE_DIR [--count N] [--steps S]');
  const s = await scoreBundle(positionals[0], {
    count: Number(values.count),
    steps: Number(values.steps),
    seed: Number(values.seed),
    levels: values.levels?.split(',') as SceneLevel[] | undefined,
  });
  const [lo, hi] = s.wilson95;
  process.stdout.write(
    `accuracy ${s.accuracy.toFixed(3)} [${lo.toFixed(3)}, ${hi.toFixed(3)}] n=${s.n} unparsed=${s.unparsed}\n`,
  );
  if (s.accuracy < Number(values.min)) process.exitCode = 1;
}

if (require.main === module)
  main().catch((e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 2;
  });
