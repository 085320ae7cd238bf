// `npm run bench -- evaluator [--samples N] [--max-tokens N] [--repeats N]`
//
// Starts the API on the demo bundle (models/lvr-tiny-demo, 8 concurrent sequences) and evaluates one benchmark of
// N samples (224x224 images, two options) through the evaluator's runner — prompt from the benchmark folder, OpenAI
// SDK call, one MinIO object per sample, scoring — at concurrency 1 and 8. The baseline, timed the same way in the
// same run, sends the identical requests with the OpenAI SDK alone (no benchmark reading, storage or scoring). Reports
// samples/s per concurrency, the 8-vs-1 ratio, and the evaluator's own overhead per sample
// ((evaluator wall − baseline wall) / samples). Needs MinIO (the stack's env). Prints a final `BENCH {json}` line.
import OpenAI from 'openai';
import sharp from 'sharp';
import { EVALUATION_API_VERSION } from '@lvr/contracts';
import {
  BENCHMARK_FORMAT,
  BenchmarkRecord,
  BenchmarkRegistry,
  LocalBenchmarkSource,
  writeBenchmarkFolder,
} from '@lvr/data';
import { ObjectStore, objectStoreConfigFromEnv } from '@lvr/storage';
import { EvaluationRunner } from '../../apps/evaluator/src/execution/runner';
import { ModelClient } from '../../apps/evaluator/src/execution/model-client';
import { promptContent } from '../../apps/evaluator/src/execution/prompt';
import { EvaluationStore } from '../../apps/evaluator/src/results/evaluation-store';
import { startDemoApi } from '../../tests/evaluator/support/processes';
import { tempDir } from '../../tests/evaluator/support/fixtures';
import { median } from '../stats';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

const SAMPLES = Number(arg('samples', '32'));
const MAX_TOKENS = Number(arg('max-tokens', '16'));
const LEVELS = [1, 8];
const REPEATS = Number(arg('repeats', '3'));
const MODEL = 'bench-eval';
const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d;

async function fixture(dir: string): Promise<void> {
  const images = new Map<string, Buffer>();
  const records: BenchmarkRecord[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const png = await sharp({
      create: {
        width: 224,
        height: 224,
        channels: 3,
        background: { r: (i * 37) % 256, g: (i * 91) % 256, b: 128 },
      },
    })
      .png()
      .toBuffer();
    images.set(`images/${i}.png`, png);
    records.push({
      id: `b${i}`,
      question: `What colour is the square in picture ${i}?`,
      options: [
        { letter: 'A', text: 'red' },
        { letter: 'B', text: 'blue' },
      ],
      answer: i % 2 ? 'A' : 'B',
      image: `images/${i}.png`,
      category: 'colour',
    });
  }
  writeBenchmarkFolder(dir, {
    manifest: {
      format: BENCHMARK_FORMAT,
      name: 'bench',
      version: '1',
      description: 'evaluator bench fixture',
      protocols: ['mc-letter'],
      splits: ['test'],
      categories: ['colour'],
    },
    splits: { test: records },
    images,
  });
}

async function main(): Promise<void> {
  const dir = tempDir('bench-evaluator');
  await fixture(dir);
  const api = await startDemoApi(MODEL, {
    LVR_KAFKA_BROKERS: '',
    LVR_MAX_CONCURRENT: '8',
    LVR_MAX_QUEUE: '256',
  });
  const objects = new ObjectStore(objectStoreConfigFromEnv());
  const store = new EvaluationStore(objects, `lvr-eval-bench-${Date.now().toString(36)}`);
  await store.init();
  const registry = new BenchmarkRegistry([{ name: 'bench', uri: dir, description: 'bench' }]);
  const retry = { maxRetries: 3, baseMs: 200, maxMs: 2000 };
  const client = new ModelClient({ baseURL: `${api.url}/v1`, timeoutMs: 120_000, retry });
  const sdk = new OpenAI({ baseURL: `${api.url}/v1`, apiKey: 'no-key', maxRetries: 0 });
  const source = new LocalBenchmarkSource(dir);
  const { loadBenchmark } = await import('@lvr/data');
  const records = (await loadBenchmark(source)).records;
  const result: Record<string, number | string> = {
    samples: SAMPLES,
    max_tokens: MAX_TOKENS,
    repeats: REPEATS,
    bundle: 'models/lvr-tiny-demo',
  };
  try {
    // warm-up: load sessions and caches on both paths
    await sdk.chat.completions.create({
      model: MODEL,
      max_tokens: 2,
      temperature: 0,
      messages: [{ role: 'user', content: await promptContent(records[0], source) }],
    });
    for (const concurrency of LEVELS) {
      const runner = new EvaluationRunner(
        { concurrency, addressVersions: false, workerId: 'bench' },
        client,
        store,
        registry,
        objects,
      );
      const evaluatorTimes: number[] = [];
      const directTimes: number[] = [];
      // Alternate the two sides so load from other processes on the machine hits both alike; medians of REPEATS.
      for (let rep = 0; rep < REPEATS; rep++) {
        const request = {
          apiVersion: EVALUATION_API_VERSION,
          id: `bench-${concurrency}-${rep}`,
          timestamp: new Date().toISOString(),
          evalId: `bench-c${concurrency}-${rep}-${Date.now().toString(36)}`,
          modelId: MODEL,
          benchmarks: [{ name: 'bench' }],
          decoding: { maxTokens: MAX_TOKENS, temperature: 0 },
        };
        const plan = await runner.plan(request);
        const t0 = performance.now();
        const outcome = await runner.run(plan, new AbortController().signal);
        evaluatorTimes.push((performance.now() - t0) / 1000);
        if (outcome.samples.length !== SAMPLES || outcome.samples.some((s) => s.failed))
          throw new Error(`evaluator run incomplete at concurrency ${concurrency}`);

        let next = 0;
        const t1 = performance.now();
        await Promise.all(
          Array.from({ length: concurrency }, async () => {
            while (next < records.length) {
              const record = records[next++];
              await sdk.chat.completions.create({
                model: MODEL,
                temperature: 0,
                max_tokens: MAX_TOKENS,
                messages: [{ role: 'user', content: await promptContent(record, source) }],
              });
            }
          }),
        );
        directTimes.push((performance.now() - t1) / 1000);
      }
      const evaluatorS = median(evaluatorTimes);
      const directS = median(directTimes);
      result[`c${concurrency}_samples_per_s`] = round(SAMPLES / evaluatorS);
      result[`c${concurrency}_direct_samples_per_s`] = round(SAMPLES / directS);
      result[`c${concurrency}_overhead_ms_per_sample`] = round(((evaluatorS - directS) * 1000) / SAMPLES, 1);
      process.stdout.write(
        `concurrency ${concurrency}: evaluator ${round(SAMPLES / evaluatorS)} samples/s, SDK alone ${round(SAMPLES / directS)} samples/s (medians of ${REPEATS})\n`,
      );
    }
    result.speedup_c8_over_c1 = round(Number(result.c8_samples_per_s) / Number(result.c1_samples_per_s));
    result.direct_speedup_c8_over_c1 = round(
      Number(result.c8_direct_samples_per_s) / Number(result.c1_direct_samples_per_s),
    );
  } finally {
    await api.stop();
    await objects.removePrefix(store.bucket, '').catch(() => undefined);
  }
  process.stdout.write(`BENCH ${JSON.stringify(result)}\n`);
}

main().catch((error: Error) => {
  process.stderr.write(`${error.stack}\n`);
  process.exit(1);
});
