import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { ALL_TOPICS, Topics } from '@lvr/contracts';
import { startEvaluator } from '../src/main';
import { uniqueName } from '../../../tests/support/env';
import { fetchOpenApi, parameter, responseSchemaName } from '../../../tests/support/openapi';
import { ensureTopics, produceRaw, waitForMessage } from '../../../tests/support/kafka';

describe('evaluator service', () => {
  let app: INestApplication;
  // Handle only this test's evaluations: the topics are shared with every other suite on the stack.
  const prefix = `${uniqueName('svc')
    .replace(/[^a-z0-9-]/g, '')
    .slice(0, 20)}-`;

  before(async () => {
    await ensureTopics([...ALL_TOPICS]);
    process.env.EVALUATOR_GROUP_ID = uniqueName('evaluator');
    process.env.LVR_EVAL_ID_PREFIX = prefix;
    process.env.LVR_EVAL_BUCKET = uniqueName('lvr-eval-svc').slice(0, 60);
    app = await startEvaluator(0);
  });

  after(async () => {
    await app?.close();
    delete process.env.LVR_EVAL_ID_PREFIX;
    delete process.env.LVR_EVAL_BUCKET;
  });

  test('answers its health probes', async () => {
    await request(app.getHttpServer()).get('/health/live').expect(200);
    await request(app.getHttpServer()).get('/health/ready').expect(200, { status: 'ready' });
  });

  test('its OpenAPI document is generated from the controller, the response classes and the contract DTO', async () => {
    const doc = await fetchOpenApi(app, [
      '/v1/evaluations',
      '/v1/evaluations/{id}',
      '/v1/evaluations/{id}/report',
      '/v1/evaluations/{id}/samples',
    ]);
    const schemas = doc.components.schemas;
    const list = doc.paths['/v1/evaluations'].get;
    const limit = parameter(list, 'limit').schema;
    assert.deepEqual([limit.minimum, limit.maximum], [1, 1000]);
    assert.equal(responseSchemaName(list, '200'), 'EvaluationList');
    assert.equal(schemas.EvaluationList.properties.data.items.$ref, '#/components/schemas/EvaluationSummary');
    const summary = schemas.EvaluationSummary;
    for (const field of ['evalId', 'state', 'modelId', 'trigger', 'createdAt', 'updatedAt'])
      assert.ok(summary.required.includes(field), `EvaluationSummary requires ${field}`);
    assert.deepEqual(summary.properties.state.enum, ['running', 'succeeded', 'failed']);
    assert.equal(summary.properties.headline.items.$ref, '#/components/schemas/ScoreEntryView');
    assert.ok(schemas.ScoreEntryView.required.includes('accuracy'));
    assert.ok(!('owner' in summary.properties), 'the lease owner stays internal');
    assert.equal(
      schemas.EvaluationDetail.properties.request.allOf[0].$ref,
      '#/components/schemas/EvaluationRequest',
    );
    // the request schema is the contract DTO's validation rules
    const evaluationRequest = schemas.EvaluationRequest;
    assert.ok(
      evaluationRequest.required.includes('evalId') && evaluationRequest.required.includes('benchmarks'),
    );
    assert.ok(evaluationRequest.properties.decoding, 'nested decoding settings are documented');
    assert.ok(doc.paths['/v1/evaluations/{id}/report'].get.responses['200'].content['text/html']);
    assert.equal(responseSchemaName(doc.paths['/v1/evaluations/{id}'].get, '404'), 'ErrorResponse');
  });

  test('an invalid evaluation request is dead-lettered and answered with a Failed result', async () => {
    const evalId = `${prefix}invalid`;
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

  test('a valid request while no API is configured fails with that reason instead of hanging', async () => {
    const evalId = `${prefix}noapi`;
    await produceRaw(
      Topics.evaluationRequests,
      evalId,
      JSON.stringify({
        apiVersion: 'lvr.evaluation/v1',
        id: uniqueName('msg'),
        timestamp: new Date().toISOString(),
        evalId,
        modelId: 'm',
        benchmarks: [{ name: 'synthetic-grounding' }],
      }),
    );
    const result = await waitForMessage<{ evalId: string; status: string; reason: string }>(
      Topics.evaluationResults,
      (m) => m.evalId === evalId,
    );
    assert.equal(result.status, 'Failed');
    assert.match(result.reason, /no API configured \(set LVR_EVAL_API_URL\)/);
  });
});
