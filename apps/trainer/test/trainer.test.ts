import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { Topics } from '@lvr/contracts';
import { runCli } from '../src/cli/runs';
import { startTrainer } from '../src/main';
import { uniqueName } from '../../../tests/support/env';
import { fetchOpenApi, parameter, responseSchemaName } from '../../../tests/support/openapi';
import { waitForMessage } from '../../../tests/support/kafka';
import {
  EventRecorder,
  type SuiteTopics,
  produce,
  suiteTopics,
  topicEnv,
  trainingRequest,
} from '../../../tests/trainer/harness';

describe('trainer service (local executor)', () => {
  let app: INestApplication;
  let topics: SuiteTopics;
  let events: EventRecorder;
  let stateDir: string;

  before(async () => {
    topics = await suiteTopics('trainer-svc');
    events = await EventRecorder.start(topics.events);
    stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lvr-trainer-'));
    Object.assign(process.env, topicEnv(topics), {
      TRAINER_GROUP_ID: uniqueName('trainer'),
      LVR_TRAINER_EXECUTOR: 'local',
      LVR_TRAINER_STATE_DIR: stateDir,
      LVR_API_KEYS: 'sk-operator',
    });
    app = await startTrainer(0);
  });

  after(async () => {
    await app?.close();
    await events?.stop();
    fs.rmSync(stateDir, { recursive: true, force: true });
  });

  test('answers its health probes once the consumer joined', async () => {
    await request(app.getHttpServer()).get('/health/live').expect(200, { status: 'ok' });
    await request(app.getHttpServer()).get('/health/ready').expect(200, { status: 'ready' });
  });

  test('guards the operator API with the API keys and documents it', async () => {
    const missing = await request(app.getHttpServer()).get('/v1/runs').expect(401);
    assert.equal(missing.body.error.code, 'missing_api_key');
    await request(app.getHttpServer()).get('/v1/runs').set('Authorization', 'Bearer wrong').expect(401);
    const doc = await request(app.getHttpServer()).get('/openapi.json').expect(200);
    assert.ok(doc.body.paths['/v1/runs/{id}/cancel'].post);
    const unknown = await request(app.getHttpServer())
      .get('/v1/runs/no-such-run')
      .set('Authorization', 'Bearer sk-operator')
      .expect(404);
    assert.equal(unknown.body.error.code, 'run_not_found');
  });

  test('its OpenAPI document is generated from the controller and the response classes', async () => {
    const doc = await fetchOpenApi(app, [
      '/v1/runs',
      '/v1/runs/{id}',
      '/v1/runs/{id}/cancel',
      '/v1/runs/{id}/logs',
      '/v1/trainer',
    ]);
    const schemas = doc.components.schemas;
    // request side: the parameters carry the same rules the controller enforces
    const list = doc.paths['/v1/runs'].get;
    const phases = parameter(list, 'phase').schema.enum;
    assert.ok(phases.includes('Running') && phases.includes('Succeeded'));
    const logs = doc.paths['/v1/runs/{id}/logs'].get;
    const tail = parameter(logs, 'tail').schema;
    assert.deepEqual([tail.minimum, tail.maximum], [1, 10000]);
    const id = parameter(logs, 'id');
    assert.equal(id.in, 'path');
    assert.match('run-a', new RegExp(id.schema.pattern));
    assert.ok(logs.responses['200'].content['text/plain']);
    // response side: the shapes the handlers return
    assert.equal(responseSchemaName(list, '200'), 'RunList');
    assert.equal(schemas.RunList.properties.data.items.$ref, '#/components/schemas/RunView');
    const run = schemas.RunView;
    for (const field of ['runId', 'stage', 'phase', 'queued', 'conditions', 'checkpoints', 'resources'])
      assert.ok(run.required.includes(field), `RunView requires ${field}`);
    for (const field of ['progress', 'bundle', 'workload', 'exitCode', 'reason'])
      assert.ok(run.properties[field]);
    assert.deepEqual(Object.keys(schemas.RunConditionView.properties).sort(), [
      'attempt',
      'message',
      'reason',
      'time',
      'type',
    ]);
    assert.deepEqual(schemas.CheckpointView.required.sort(), ['at', 'step', 'uri']);
    const cancel = doc.paths['/v1/runs/{id}/cancel'].post;
    assert.equal(responseSchemaName(cancel, '202'), 'CancelResult');
    assert.equal(responseSchemaName(cancel, '404'), 'ErrorResponse');
    assert.deepEqual(schemas.ErrorResponse.required, ['error']);
    assert.deepEqual(schemas.ErrorBody.required, ['message', 'type']);
    assert.deepEqual(doc.security, [{ bearerAuth: [] }]);
  });

  test('a valid request is Accepted, recorded, and a worker that rejects its model fails the run with exit 78', async () => {
    const runId = uniqueName('run');
    await produce(topics.requests, runId, trainingRequest(runId, { model: { uri: '/nonexistent/model' } }));
    const accepted = await events.next(runId, 'Accepted');
    assert.equal(accepted.data!.stage, 'sft');
    const failed = await events.next(runId, 'Failed', 120_000);
    assert.equal(failed.data!.exitCode, 78);
    assert.ok(!events.types(runId).includes('Retrying'), 'exit 78 is not retried');
    const view = await request(app.getHttpServer())
      .get(`/v1/runs/${runId}`)
      .set('Authorization', 'Bearer sk-operator')
      .expect(200);
    assert.equal(view.body.phase, 'Failed');
    assert.equal(view.body.exitCode, 78);

    // The same through the CLI.
    process.env.LVR_TRAINER_URL = (await app.getUrl()).replace('[::1]', '127.0.0.1');
    process.env.LVR_API_KEY = 'sk-operator';
    const printed: string[] = [];
    await runCli(['list', '--phase', 'Failed'], (t) => printed.push(t));
    assert.match(printed.join('\n'), new RegExp(`${runId}\\s+sft\\s+Failed`));
    await runCli(['get', runId], (t) => printed.push(t));
    assert.equal(JSON.parse(printed.at(-1)!).exitCode, 78);
    await runCli(['cancel', runId], (t) => printed.push(t));
    assert.equal(printed.at(-1), `${runId}: Failed`, 'an ended run stays as it ended');
    await runCli(['logs', runId, '--tail', '5'], (t) => printed.push(t));
    assert.match(printed.at(-1)!, /error:/);
    await assert.rejects(
      runCli(['get', 'no-such-run'], () => undefined),
      /404: no run with id no-such-run/,
    );
    await assert.rejects(
      runCli(['explode'], () => undefined),
      /usage: npm run runs/,
    );

    const logs = await request(app.getHttpServer())
      .get(`/v1/runs/${runId}/logs`)
      .set('Authorization', 'Bearer sk-operator')
      .expect(200);
    assert.match(logs.text, /error:/);
  });

  test('an invalid request is dead-lettered with the reason and rejected by run id', async () => {
    const runId = uniqueName('bad');
    const payload = JSON.stringify({ apiVersion: 'lvr.training/v1', runId, stage: 'pretrain' });
    await produce(topics.requests, runId, payload);
    const dead = await waitForMessage<{ key: string; reason: string; payload: string; sourceTopic: string }>(
      Topics.deadLetter,
      (m) => m.key === runId,
    );
    assert.equal(dead.sourceTopic, topics.requests);
    assert.equal(dead.payload, payload, 'the original message is kept whole');
    assert.match(dead.reason, /checkpoint/);
    const event = await events.next(runId, 'Rejected');
    assert.match(event.reason!, /stage/);
  });
});
