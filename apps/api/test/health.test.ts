import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { FakeBackend } from './support/fake-backend';
import { bootApp } from './support/app';

describe('API boots and answers (no models)', () => {
  let app: NestExpressApplication;
  before(async () => {
    app = await bootApp({ models: [] });
  });
  after(async () => app.close());

  it('GET /health/live answers 200', async () => {
    const res = await request(app.getHttpServer()).get('/health/live').expect(200);
    assert.deepEqual(res.body, { status: 'ok' });
  });

  it('GET /health/ready is 503 while no model is loaded', async () => {
    const res = await request(app.getHttpServer()).get('/health/ready').expect(503);
    assert.equal(res.body.status, 'no_models');
    assert.deepEqual(res.body.models, []);
  });

  it('GET /v1/models lists nothing', async () => {
    const res = await request(app.getHttpServer()).get('/v1/models').expect(200);
    assert.deepEqual(res.body, { object: 'list', data: [] });
  });

  it('unknown routes get an OpenAI-shaped 404 with a request id header', async () => {
    const res = await request(app.getHttpServer()).get('/v1/nope').expect(404);
    assert.equal(res.body.error.type, 'invalid_request_error');
    assert.equal(typeof res.body.error.message, 'string');
    assert.equal(res.body.error.param, null);
    assert.match(res.headers['x-request-id'], /^req-/);
  });
});

describe('API with a loaded model', () => {
  let app: NestExpressApplication;
  before(async () => {
    app = await bootApp(
      { models: [{ uri: '/bundles/demo' }, { id: 'org/other', uri: '/bundles/x' }] },
      new FakeBackend(),
    );
  });
  after(async () => app.close());

  it('is ready and lists the models', async () => {
    const ready = await request(app.getHttpServer()).get('/health/ready').expect(200);
    assert.deepEqual(ready.body, { status: 'ready', models: ['demo', 'org/other'] });
    const res = await request(app.getHttpServer()).get('/v1/models').expect(200);
    assert.deepEqual(
      res.body.data.map((m: { id: string; object: string }) => [m.id, m.object]),
      [
        ['demo', 'model'],
        ['org/other', 'model'],
      ],
    );
  });

  it('GET /v1/models/{id} returns one card, ids with a slash included; unknown ids are 404 model_not_found', async () => {
    const one = await request(app.getHttpServer()).get('/v1/models/org/other').expect(200);
    assert.equal(one.body.id, 'org/other');
    assert.equal(one.body.max_model_len, 4096);
    const missing = await request(app.getHttpServer()).get('/v1/models/ghost').expect(404);
    assert.equal(missing.body.error.code, 'model_not_found');
    assert.equal(missing.body.error.param, 'model');
  });
});
