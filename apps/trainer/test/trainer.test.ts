import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { ALL_TOPICS, Topics } from '@lvr/contracts';
import { startTrainer } from '../src/main';
import { uniqueName } from '../../../tests/support/env';
import { ensureTopics, produceRaw, waitForMessage } from '../../../tests/support/kafka';

describe('trainer service', () => {
  let app: INestApplication;

  before(async () => {
    await ensureTopics([...ALL_TOPICS]);
    process.env.TRAINER_GROUP_ID = uniqueName('trainer');
    app = await startTrainer(0);
  });

  after(async () => {
    await app?.close();
  });

  test('answers its health probes once the consumer joined', async () => {
    await request(app.getHttpServer()).get('/health/live').expect(200, { status: 'ok' });
    await request(app.getHttpServer()).get('/health/ready').expect(200, { status: 'ready' });
  });

  test('a valid training request is announced as Accepted', async () => {
    const runId = uniqueName('run');
    await produceRaw(
      Topics.trainingRequests,
      runId,
      JSON.stringify({
        apiVersion: 'lvr.training/v1',
        id: uniqueName('msg'),
        timestamp: new Date().toISOString(),
        runId,
        stage: 'sft',
        model: { uri: 's3://models/base' },
        data: { uri: 's3://data/meta.json' },
        resources: { gpusPerNode: 1 },
        checkpoint: { uri: `s3://runs/${runId}`, everySteps: 10 },
        output: { bundleUri: `s3://models/${runId}` },
      }),
    );
    const event = await waitForMessage<{ runId: string; type: string; data: { stage: string } }>(
      Topics.trainingEvents,
      (m) => m.runId === runId,
    );
    assert.equal(event.type, 'Accepted');
    assert.equal(event.data.stage, 'sft');
  });

  test('an invalid request is dead-lettered with the reason and rejected by run id', async () => {
    const runId = uniqueName('bad');
    const payload = JSON.stringify({ apiVersion: 'lvr.training/v1', runId, stage: 'pretrain' });
    await produceRaw(Topics.trainingRequests, runId, payload);
    const dead = await waitForMessage<{ key: string; reason: string; payload: string; sourceTopic: string }>(
      Topics.deadLetter,
      (m) => m.key === runId,
    );
    assert.equal(dead.sourceTopic, Topics.trainingRequests);
    assert.equal(dead.payload, payload, 'the original message is kept whole');
    assert.match(dead.reason, /stage/);
    assert.match(dead.reason, /checkpoint/);
    const event = await waitForMessage<{ runId: string; type: string; reason: string }>(
      Topics.trainingEvents,
      (m) => m.runId === runId,
    );
    assert.equal(event.type, 'Rejected');
    assert.match(event.reason, /stage/);
  });

  test('garbage bytes do not block the partition', async () => {
    const key = uniqueName('garbage');
    await produceRaw(Topics.trainingRequests, key, Buffer.from([0xff, 0xfe, 0x00, 0x01]));
    const dead = await waitForMessage<{ key: string; reason: string; payloadEncoding: string }>(
      Topics.deadLetter,
      (m) => m.key === key,
    );
    assert.equal(dead.payloadEncoding, 'base64');
    assert.match(dead.reason, /JSON/);
    // A valid message after the garbage is still processed.
    const runId = uniqueName('after');
    await produceRaw(Topics.trainingRequests, runId, JSON.stringify({ runId }));
    const event = await waitForMessage<{ runId: string; type: string }>(
      Topics.trainingEvents,
      (m) => m.runId === runId,
    );
    assert.equal(event.type, 'Rejected');
  });
});
