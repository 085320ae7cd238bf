import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { ALL_TOPICS, Topics } from '@lvr/contracts';
import { startEvaluator } from '../src/main';
import { uniqueName } from '../../../tests/support/env';
import { ensureTopics, produceRaw, waitForMessage } from '../../../tests/support/kafka';

describe('evaluator service', () => {
  let app: INestApplication;

  before(async () => {
    await ensureTopics([...ALL_TOPICS]);
    process.env.EVALUATOR_GROUP_ID = uniqueName('evaluator');
    app = await startEvaluator(0);
  });

  after(async () => {
    await app?.close();
  });

  test('answers its health probes', async () => {
    await request(app.getHttpServer()).get('/health/live').expect(200);
    await request(app.getHttpServer()).get('/health/ready').expect(200, { status: 'ready' });
  });

  test('an invalid evaluation request is dead-lettered and answered with a Failed result', async () => {
    const evalId = uniqueName('eval');
    await produceRaw(Topics.evaluationRequests, evalId, JSON.stringify({ evalId, benchmarks: [] }));
    const dead = await waitForMessage<{ key: string; reason: string }>(
      Topics.deadLetter,
      (m) => m.key === evalId,
    );
    assert.match(dead.reason, /benchmarks/);
    const result = await waitForMessage<{ evalId: string; status: string; reason: string }>(
      Topics.evaluationResults,
      (m) => m.evalId === evalId,
    );
    assert.equal(result.status, 'Failed');
    assert.match(result.reason, /invalid request/);
  });
});
