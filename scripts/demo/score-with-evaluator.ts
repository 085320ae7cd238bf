/**
 * Scores a bundle with the real evaluator service: starts an API process serving BUNDLE and an evaluator process
 * (both on random ports, against the test stack's Kafka and MinIO), sends one evaluation request for a benchmark
 * folder, waits for its result event and writes the evaluator's results.json to OUT.
 *
 *   export LVR_STACK_DIR=...; eval "$(node scripts/stack/cli.mjs env)"
 *   node -r @swc-node/register scripts/demo/score-with-evaluator.ts --bundle DIR --benchmark DIR --split test \
 *     --steps 0,4,8,16 [--limit N] [--concurrency 2] --out results.json [--samples samples.jsonl]
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ALL_TOPICS } from '@lvr/contracts';
import { startServer } from '../../apps/api/test/support/server-process';
import { ensureTopics } from '../../tests/support/kafka';
import { requestEvaluation, testStore, waitForResult } from '../../tests/evaluator/support/harness';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      bundle: { type: 'string' },
      benchmark: { type: 'string' },
      split: { type: 'string', default: 'test' },
      steps: { type: 'string', default: '0,4,8,16' },
      limit: { type: 'string' },
      concurrency: { type: 'string', default: '2' },
      'max-tokens': { type: 'string', default: '48' },
      out: { type: 'string' },
      samples: { type: 'string' },
    },
  });
  if (!values.bundle || !values.benchmark || !values.out)
    throw new Error('--bundle DIR --benchmark DIR --out FILE are required');
  const stamp = `${Date.now().toString(36)}-${process.pid}`;
  const model = 'demo-scored';
  const prefix = `demo-${stamp}-`;
  const bucket = `lvr-demo-eval-${stamp}`;
  const benchmark = path.resolve(values.benchmark);
  const name = 'synthetic-demo';
  await ensureTopics([...ALL_TOPICS]);
  const api = await startServer({
    LVR_MODELS: `${model}=${path.resolve(values.bundle)}`,
    LVR_KAFKA_BROKERS: '',
  });
  const evaluator = await startServer(
    {
      EVALUATOR_GROUP_ID: `demo-evaluator-${stamp}`,
      LVR_EVAL_ID_PREFIX: prefix,
      LVR_EVAL_API_URL: `${api.url}/v1`,
      LVR_EVAL_BUCKET: bucket,
      LVR_EVAL_CONCURRENCY: values.concurrency!,
      LVR_EVAL_TIMEOUT_MS: '600000',
      LVR_BENCHMARKS: `${name}=${benchmark}`,
    },
    'apps/evaluator/src/main.ts',
  );
  try {
    const evalId = `${prefix}${path.basename(values.bundle)}`;
    const t0 = Date.now();
    await requestEvaluation({
      evalId,
      modelId: model,
      benchmarks: [
        {
          name,
          split: values.split,
          ...(values.limit ? { limit: Number(values.limit) } : {}),
        },
      ],
      decoding: {
        strategy: 'steps',
        steps: values.steps!.split(',').map(Number),
        temperature: 0,
        maxTokens: Number(values['max-tokens']),
      },
    });
    const result = await waitForResult(evalId, 3 * 3600_000);
    if (result.status !== 'Succeeded') throw new Error(`evaluation failed: ${result.reason}`);
    const store = testStore();
    const results = JSON.parse((await store.get(bucket, `evaluations/${evalId}/results.json`)).toString());
    fs.writeFileSync(values.out, JSON.stringify(results, null, 1) + '\n');
    if (values.samples)
      fs.writeFileSync(values.samples, await store.get(bucket, `evaluations/${evalId}/samples.jsonl`));
    process.stdout.write(`evaluation ${evalId} took ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
    for (const s of result.scores ?? [])
      if (s.group === 'overall')
        process.stdout.write(
          `${s.protocol} ${s.config}: ${(100 * s.accuracy).toFixed(1)}% [${(100 * s.ciLow).toFixed(1)}, ` +
            `${(100 * s.ciHigh).toFixed(1)}] n=${s.samples} unparseable=${s.unparseable} failed=${s.failed}\n`,
        );
  } finally {
    await evaluator.stop();
    await api.stop();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
