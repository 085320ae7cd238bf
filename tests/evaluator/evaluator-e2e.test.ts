import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ALL_TOPICS } from '@lvr/contracts';
import { BENCHMARK_FORMAT, BenchmarkRecord, writeBenchmarkFolder } from '@lvr/data';
import { uniqueName } from '../support/env';
import { ensureTopics } from '../support/kafka';
import { png, tempDir, colourFixture } from './support/fixtures';
import { EvaluatorProcess, startDemoApi, startEvaluatorProcess } from './support/processes';
import {
  ResultMessage,
  collect,
  readJsonl,
  requestEvaluation,
  testStore,
  waitForResult,
} from './support/harness';
import type { ServerProcess } from '../../apps/api/test/support/server-process';

const MODEL = 'eval-demo';
const INSTRUCTION = "Answer with the option's letter from the given choices directly.";

/**
 * Hand-scored fixture. Four questions, two MMVP-style pairs (q0+q2, q1+q3). With the demo bundle (random weights)
 * the greedy one-token answer is "HAL" for every prompt, which the robust parser reads as the option whose text is
 * "HAL", so by hand:
 *   q0 A=HAL  expected A -> right     q1 A=HAL expected B -> wrong
 *   q2 B=HAL  expected B -> right     q3 (no HAL option)  -> unparseable, wrong
 *   mmvp-question 2/4 (1 unparseable), mmvp-pair 1/2 (p1 = q0+q2 right), lvr-answer-tag 0/4 (no <answer> tag: 4 untagged)
 * The test does not trust that assumption blindly: it asks the API itself first (same prompt, same decoding) and
 * derives the expectation from those raw answers with the rule above, so a retrained demo bundle changes the
 * numbers, not the check.
 */
const HAND: { id: string; options: [string, string]; answer: 'A' | 'B'; pairId: string; category: string }[] =
  [
    { id: 'q0', options: ['HAL', 'zebra'], answer: 'A', pairId: 'p1', category: 'colour' },
    { id: 'q1', options: ['HAL', 'zebra'], answer: 'B', pairId: 'p2', category: 'colour' },
    { id: 'q2', options: ['zebra', 'HAL'], answer: 'B', pairId: 'p1', category: 'shape' },
    { id: 'q3', options: ['cat', 'dog'], answer: 'A', pairId: 'p2', category: 'shape' },
  ];

async function handFixture(dir: string): Promise<BenchmarkRecord[]> {
  const images = new Map<string, Buffer>();
  const records: BenchmarkRecord[] = [];
  for (const [i, q] of HAND.entries()) {
    images.set(`images/${q.id}.png`, await png(10 + i));
    records.push({
      id: q.id,
      question: `Which word names object ${i}?`,
      options: [
        { letter: 'A', text: q.options[0] },
        { letter: 'B', text: q.options[1] },
      ],
      answer: q.answer,
      image: `images/${q.id}.png`,
      category: q.category,
      pairId: q.pairId,
    });
  }
  writeBenchmarkFolder(dir, {
    manifest: {
      format: BENCHMARK_FORMAT,
      name: 'hand',
      version: '1',
      description: 'hand-scored fixture',
      protocols: ['mmvp-question', 'mmvp-pair'],
      splits: ['test'],
      categories: ['colour', 'shape'],
    },
    splits: { test: records },
    images,
  });
  return records;
}

/** The answer the model gives to exactly the upstream prompt, asked directly (not through the evaluator). */
async function probe(apiUrl: string, dir: string, record: BenchmarkRecord, steps: number): Promise<string> {
  const image = fs.readFileSync(path.join(dir, record.image as string)).toString('base64');
  const text = `${record.question}\nOptions:\n${record.options.map((o) => `${o.letter}. ${o.text}`).join('\n')}\n${INSTRUCTION}`;
  const res = await fetch(`${apiUrl}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model: MODEL,
      temperature: 0,
      max_tokens: 1,
      lvr: steps === 0 ? { strategy: 'none' } : { strategy: 'steps', steps },
      messages: [
        {
          role: 'user',
          content: [
            { type: 'image_url', image_url: { url: `data:image/png;base64,${image}` } },
            { type: 'text', text },
          ],
        },
      ],
    }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return ((await res.json()) as { choices: { message: { content: string } }[] }).choices[0].message.content;
}

/** The hand rule of the fixture comment: a bare letter, or the option whose text the answer is. */
function handLetter(raw: string, record: BenchmarkRecord): string | null {
  const letter = /^\s*\(?([AB])\)?\.?\s*$/.exec(raw);
  if (letter) return letter[1];
  const said = raw.trim().toLowerCase();
  return record.options.find((o) => o.text.toLowerCase() === said)?.letter ?? null;
}

describe('evaluator end to end (real API on the demo bundle, Kafka, MinIO)', () => {
  const prefix = `${uniqueName('e2e')
    .replace(/[^a-z0-9-]/g, '')
    .slice(0, 20)}-`;
  const bucket = uniqueName('lvr-eval-e2e').slice(0, 60);
  const dir = tempDir('hand');
  let records: BenchmarkRecord[];
  let api: ServerProcess;
  let evaluator: EvaluatorProcess;
  const store = testStore();

  before(async () => {
    await ensureTopics([...ALL_TOPICS]);
    records = await handFixture(dir);
    api = await startDemoApi(MODEL, { LVR_KAFKA_BROKERS: '' });
    evaluator = await startEvaluatorProcess({
      EVALUATOR_GROUP_ID: uniqueName('evaluator-e2e'),
      LVR_EVAL_ID_PREFIX: prefix,
      LVR_EVAL_API_URL: `${api.url}/v1`,
      LVR_EVAL_BUCKET: bucket,
      LVR_EVAL_CONCURRENCY: '2',
      LVR_BENCHMARKS: `hand=${dir}`,
    });
  });

  after(async () => {
    await evaluator?.stop();
    await api?.stop();
  });

  test('a request is run, scored per protocol as by hand, stored in MinIO and answered with a result event', async () => {
    const evalId = `${prefix}hand`;
    await requestEvaluation({
      evalId,
      modelId: MODEL,
      benchmarks: [{ name: 'hand' }],
      decoding: { steps: [0, 4], maxTokens: 1, temperature: 0 },
    });
    const result = await waitForResult(evalId);
    assert.equal(result.status, 'Succeeded', result.reason);

    for (const steps of [0, 4]) {
      const config = `steps=${steps}`;
      const answers = await Promise.all(records.map((r) => probe(api.url, dir, r, steps)));
      const letters = records.map((r, i) => handLetter(answers[i], r));
      const right = records.map((r, i) => letters[i] === r.answer);
      const expectQuestion = right.filter(Boolean).length;
      const expectUnparseable = letters.filter((l) => l === null).length;
      const pairs = ['p1', 'p2'].map((p) => records.every((r, i) => r.pairId !== p || right[i]));
      const score = (protocol: string) =>
        result.scores!.find(
          (s) => s.name === 'hand' && s.protocol === protocol && s.config === config && s.group === 'overall',
        )!;
      assert.deepEqual(
        [score('mmvp-question').correct, score('mmvp-question').samples, score('mmvp-question').unparseable],
        [expectQuestion, 4, expectUnparseable],
        `${config}: answers ${JSON.stringify(answers)}`,
      );
      assert.deepEqual(
        [score('mmvp-pair').correct, score('mmvp-pair').samples],
        [pairs.filter(Boolean).length, 2],
      );
      const upstreamRight = records.filter(
        (r, i) =>
          answers[i].includes('<answer>') && answers[i].split('<answer>').at(-1)!.trim()[0] === r.answer,
      ).length;
      assert.equal(score('lvr-answer-tag').correct, upstreamRight);
      const interval = score('mmvp-question');
      assert.ok(interval.ciLow <= interval.accuracy && interval.accuracy <= interval.ciHigh);

      // samples.jsonl holds the same raw answers the API gave directly
      const samples = await readJsonl<{ sampleId: string; config: string; raw: string; latencyMs: number }>(
        store,
        bucket,
        `evaluations/${evalId}/samples.jsonl`,
      );
      const ofConfig = samples.filter((s) => s.config === config);
      assert.deepEqual(
        ofConfig.map((s) => s.sampleId),
        ['q0', 'q1', 'q2', 'q3'],
      );
      assert.deepEqual(
        ofConfig.map((s) => s.raw),
        answers,
      );
    }

    assert.equal(result.reportUri, `s3://${bucket}/evaluations/${evalId}/report.html`);
    const results = JSON.parse((await store.get(bucket, `evaluations/${evalId}/results.json`)).toString());
    assert.equal(results.format, 'lvr-evaluation-results/v1');
    assert.deepEqual(
      results.configs.map((c: { label: string }) => c.label),
      ['steps=0', 'steps=4'],
    );
    assert.equal(results.samples.total, 8);
    assert.ok(results.protocols['mmvp-pair'].includes('pair'));
    const html = (await store.get(bucket, `evaluations/${evalId}/report.html`)).toString();
    assert.match(html, /data-chart="lvr-steps"/);
    assert.match(html, /data-chart="accuracy-hand"/);

    // the read API serves the same evaluation
    const listed = (await (await fetch(`${evaluator.url}/v1/evaluations`)).json()) as {
      data: { evalId: string; state: string }[];
    };
    assert.ok(listed.data.some((e) => e.evalId === evalId && e.state === 'succeeded'));
    const one = (await (await fetch(`${evaluator.url}/v1/evaluations/${evalId}`)).json()) as {
      results: { samples: { total: number } };
    };
    assert.equal(one.results.samples.total, 8);
    const report = await fetch(`${evaluator.url}/v1/evaluations/${evalId}/report`);
    assert.equal(report.status, 200);
    assert.match(report.headers.get('content-type') ?? '', /text\/html/);
    assert.equal(await report.text(), html);
    assert.equal((await fetch(`${evaluator.url}/v1/evaluations/${prefix}nope`)).status, 404);
    assert.equal((await fetch(`${evaluator.url}/v1/evaluations/BAD_ID`)).status, 400);
    const openapi = (await (await fetch(`${evaluator.url}/openapi.json`)).json()) as {
      paths: Record<string, unknown>;
    };
    assert.ok(openapi.paths['/v1/evaluations/{id}/report']);
  });

  test('a redelivered request does not run twice', async () => {
    const evalId = `${prefix}hand`; // finished by the previous test
    const before = JSON.parse((await store.get(bucket, `index/${evalId}.json`)).toString());
    await requestEvaluation({
      evalId,
      modelId: MODEL,
      benchmarks: [{ name: 'hand' }],
      decoding: { steps: [0, 4], maxTokens: 1 },
    });
    // Requests are handled in order: once a later one has its result, the redelivery was handled too.
    const marker = `${prefix}marker`;
    await requestEvaluation({
      evalId: marker,
      modelId: MODEL,
      benchmarks: [{ name: 'hand', limit: 1 }],
      decoding: { maxTokens: 1 },
    });
    assert.equal((await waitForResult(marker)).status, 'Succeeded');
    const results = await collect<ResultMessage>(
      'lvr.evaluation.results',
      (m) => m.evalId === evalId || m.evalId === marker,
      (c) => c.some((m) => m.evalId === marker),
      60_000,
    );
    assert.equal(
      results.filter((m) => m.evalId === evalId).length,
      1,
      'one result for the redelivered evaluation',
    );
    const afterEntry = JSON.parse((await store.get(bucket, `index/${evalId}.json`)).toString());
    assert.equal(afterEntry.finishedAt, before.finishedAt);
  });

  test('an invalid benchmark fails before any sample, naming the record and field', async () => {
    const bad = tempDir('bad');
    await colourFixture(bad);
    const file = path.join(bad, 'test.jsonl');
    const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
    const record = JSON.parse(lines[2]);
    record.answer = 'Z';
    lines[2] = JSON.stringify(record);
    fs.writeFileSync(file, lines.join('\n') + '\n');
    const evalId = `${prefix}badbench`;
    await requestEvaluation({ evalId, modelId: MODEL, benchmarks: [{ name: 'broken', uri: bad }] });
    const result = await waitForResult(evalId);
    assert.equal(result.status, 'Failed');
    assert.match(
      result.reason!,
      /benchmark broken: invalid benchmark .*test\.jsonl line 3 record 'q2': field 'answer'/,
    );
    assert.deepEqual(await store.list(bucket, `evaluations/${evalId}/`), []);
  });

  test('an unknown benchmark name and an unknown model fail with a clear reason', async () => {
    const unknownBench = `${prefix}nobench`;
    await requestEvaluation({
      evalId: unknownBench,
      modelId: MODEL,
      benchmarks: [{ name: 'no-such-benchmark' }],
    });
    const benchResult = await waitForResult(unknownBench);
    assert.equal(benchResult.status, 'Failed');
    assert.match(benchResult.reason!, /unknown benchmark "no-such-benchmark"/);

    const unknownModel = `${prefix}nomodel`;
    await requestEvaluation({
      evalId: unknownModel,
      modelId: 'no-such-model',
      benchmarks: [{ name: 'hand' }],
    });
    const modelResult = await waitForResult(unknownModel);
    assert.equal(modelResult.status, 'Failed');
    assert.match(modelResult.reason!, /does not serve model "no-such-model"/);
    assert.deepEqual(await store.list(bucket, `evaluations/${unknownModel}/`), []);
  });
});
