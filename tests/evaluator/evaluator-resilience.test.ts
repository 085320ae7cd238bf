import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { ALL_TOPICS } from '@lvr/contracts';
import { uniqueName } from '../support/env';
import { ensureTopics } from '../support/kafka';
import { colourFixture, tempDir } from './support/fixtures';
import { startDemoApi, startEvaluatorProcess } from './support/processes';
import { readJsonl, requestEvaluation, sleep, testStore, waitForResult } from './support/harness';
import type { ServerProcess } from '../../apps/api/test/support/server-process';

const MODEL = 'eval-demo';

interface StoredSample {
  sampleId: string;
  config: string;
  worker: string;
  attempts: number;
  failed: boolean;
  error?: string;
}

function testPrefix(name: string): string {
  return `${uniqueName(name)
    .replace(/[^a-z0-9-]/g, '')
    .slice(0, 20)}-`;
}

/**
 * A fault-injecting hop in front of the real API: answers some requests with 503, drops some connections, and
 * answers every request whose prompt contains POISON with 500. Everything else is forwarded unchanged.
 */
function faultProxy(
  target: string,
): Promise<{ url: string; counts: Record<string, number>; close(): Promise<void> }> {
  const counts = { forwarded: 0, injected503: 0, dropped: 0, poison: 0 };
  let n = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const isChat = req.url?.endsWith('/chat/completions');
      if (isChat && body.includes('POISON')) {
        counts.poison++;
        res
          .writeHead(500, { 'content-type': 'application/json' })
          .end('{"error":{"message":"poisoned","type":"server_error"}}');
        return;
      }
      if (isChat) {
        n++;
        if (n % 4 === 1) {
          counts.injected503++;
          res
            .writeHead(503, { 'content-type': 'application/json' })
            .end('{"error":{"message":"injected","type":"server_error"}}');
          return;
        }
        if (n % 4 === 2) {
          counts.dropped++;
          req.socket.destroy();
          return;
        }
      }
      counts.forwarded++;
      const upstream = http.request(
        `${target}${req.url}`,
        { method: req.method, headers: req.headers },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      upstream.on('error', () => res.destroy());
      upstream.end(body);
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const address = server.address() as { port: number };
      resolve({
        url: `http://127.0.0.1:${address.port}`,
        counts,
        close: () => new Promise<void>((r) => server.close(() => r())),
      });
    }),
  );
}

describe('evaluator resilience', () => {
  const store = testStore();
  let api: ServerProcess;

  before(async () => {
    await ensureTopics([...ALL_TOPICS]);
    // One sequence at a time and no queue: concurrent requests get real 429s from the API.
    api = await startDemoApi(MODEL, { LVR_KAFKA_BROKERS: '', LVR_MAX_CONCURRENT: '1', LVR_MAX_QUEUE: '0' });
  });

  after(async () => {
    await api?.stop();
  });

  test('kill -9 mid-evaluation: the restarted evaluator resumes from the stored samples and finishes once', async () => {
    const prefix = testPrefix('resume');
    const bucket = uniqueName('lvr-eval-resume').slice(0, 60);
    const dir = tempDir('resume');
    await colourFixture(dir, 16);
    const env = {
      EVALUATOR_GROUP_ID: uniqueName('evaluator-resume'),
      LVR_EVAL_ID_PREFIX: prefix,
      LVR_EVAL_API_URL: `${api.url}/v1`,
      LVR_EVAL_BUCKET: bucket,
      LVR_EVAL_CONCURRENCY: '1',
      LVR_EVAL_LEASE_MS: '3000',
      LVR_BENCHMARKS: `colours=${dir}`,
    };
    const first = await startEvaluatorProcess(env);
    const evalId = `${prefix}kill`;
    await requestEvaluation({
      evalId,
      modelId: MODEL,
      benchmarks: [{ name: 'colours' }],
      decoding: { maxTokens: 48 },
    });
    const samplesPrefix = `evaluations/${evalId}/samples/`;
    for (let i = 0; ; i++) {
      if ((await store.list(bucket, samplesPrefix).catch(() => [])).length >= 3) break;
      if (i > 600) assert.fail(`no samples stored:\n${first.output().slice(-2000)}`);
      await sleep(100);
    }
    await first.kill9();
    const beforeKill = await store.list(bucket, samplesPrefix);
    assert.ok(
      beforeKill.length < 16,
      `the evaluation should still have been running (${beforeKill.length}/16 stored)`,
    );
    const firstWorker = JSON.parse((await store.get(bucket, beforeKill[0].key)).toString()).worker as string;

    const second = await startEvaluatorProcess(env);
    try {
      const result = await waitForResult(evalId, 240_000);
      assert.equal(result.status, 'Succeeded', result.reason);
      const samples = await readJsonl<StoredSample>(store, bucket, `evaluations/${evalId}/samples.jsonl`);
      assert.deepEqual(
        samples.map((s) => s.sampleId),
        Array.from({ length: 16 }, (_, i) => `q${i}`),
      );
      const byFirst = samples.filter((s) => s.worker === firstWorker).length;
      assert.ok(byFirst >= beforeKill.length, 'samples stored before the kill were kept, not recomputed');
      assert.ok(byFirst < 16, 'the restarted evaluator ran the rest');
      assert.equal(new Set(samples.map((s) => s.worker)).size, 2);
      const overall = result.scores!.find((s) => s.protocol === 'mc-letter' && s.group === 'overall')!;
      assert.equal(overall.samples, 16);
    } finally {
      await second.stop();
    }
  });

  test('429s from the API, injected 503s and dropped connections are retried; a request that keeps failing becomes a failed sample', async () => {
    const proxy = await faultProxy(api.url);
    const prefix = testPrefix('retry');
    const bucket = uniqueName('lvr-eval-retry').slice(0, 60);
    const dir = tempDir('retry');
    const records = await colourFixture(dir, 8);
    // one record whose prompt the proxy always fails
    const fs = await import('node:fs');
    const path = await import('node:path');
    const file = path.join(dir, 'test.jsonl');
    const poisoned = { ...records[7], question: 'POISON: what colour is it?' };
    fs.writeFileSync(
      file,
      [...records.slice(0, 7), poisoned].map((r) => JSON.stringify(r)).join('\n') + '\n',
    );
    const evaluator = await startEvaluatorProcess({
      EVALUATOR_GROUP_ID: uniqueName('evaluator-retry'),
      LVR_EVAL_ID_PREFIX: prefix,
      LVR_EVAL_API_URL: `${proxy.url}/v1`,
      LVR_EVAL_BUCKET: bucket,
      LVR_EVAL_CONCURRENCY: '4',
      LVR_EVAL_MAX_RETRIES: '10',
      LVR_EVAL_BACKOFF_MS: '50',
      LVR_EVAL_BACKOFF_MAX_MS: '1500',
      LVR_BENCHMARKS: `colours=${dir}`,
    });
    try {
      const evalId = `${prefix}retry`;
      await requestEvaluation({
        evalId,
        modelId: MODEL,
        benchmarks: [{ name: 'colours' }],
        decoding: { maxTokens: 24 },
      });
      const result = await waitForResult(evalId, 240_000);
      assert.equal(result.status, 'Succeeded', result.reason);
      const samples = await readJsonl<StoredSample>(store, bucket, `evaluations/${evalId}/samples.jsonl`);
      assert.equal(samples.length, 8);
      const failed = samples.filter((s) => s.failed);
      assert.deepEqual(
        failed.map((s) => s.sampleId),
        ['q7'],
      );
      assert.match(failed[0].error!, /gave up after 11 attempts/);
      assert.equal(proxy.counts.poison, 11);
      assert.ok(samples.filter((s) => !s.failed).every((s) => s.attempts >= 1));
      assert.ok(
        samples.some((s) => s.attempts > 1),
        'some sample needed a retry',
      );
      assert.ok(proxy.counts.injected503 > 0 && proxy.counts.dropped > 0);
      const overall = result.scores!.find((s) => s.protocol === 'mc-letter' && s.group === 'overall')!;
      assert.equal(overall.failed, 1);
      assert.equal(overall.samples, 8);
    } finally {
      await evaluator.stop();
      await proxy.close();
    }
  });
});
