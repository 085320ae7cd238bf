import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { MODELS_API_VERSION, Topics } from '@lvr/contracts';
import request from 'supertest';
import { ensureTopics, produceRaw, waitForMessage } from '../../../tests/support/kafka';
import { ModelHotLoader } from '../src/hotload/model-hot-loader';
import { ModelRegistry } from '../src/registry/model-registry';
import { bootApp } from './support/app';
import { FakeBackend } from './support/fake-backend';

// Real Kafka from the test stack (LVR_KAFKA_BROKERS); the backend is scripted because this tests the registry's
// reaction to `lvr.models.published`, not generation.

async function until<T>(probe: () => T | undefined, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('hot-load from lvr.models.published (Kafka)', () => {
  let app: NestExpressApplication;
  let backend: FakeBackend;
  const modelId = `hot-${randomUUID().slice(0, 8)}`;
  const published = (version: string, id = randomUUID()) =>
    JSON.stringify({
      apiVersion: MODELS_API_VERSION,
      id,
      timestamp: new Date().toISOString(),
      modelId,
      version,
      bundleUri: `/bundles/${modelId}-${version}`,
    });

  before(async () => {
    const brokers = process.env.LVR_KAFKA_BROKERS;
    if (!brokers)
      throw new Error(
        'LVR_KAFKA_BROKERS is not set (run through npm test or eval "$(node scripts/stack/cli.mjs env)")',
      );
    await ensureTopics([Topics.modelsPublished, Topics.deadLetter]);
    backend = new FakeBackend(() => modelId);
    app = await bootApp(
      { models: [{ id: 'demo', uri: '/bundles/demo' }], kafkaBrokers: brokers.split(',') },
      backend,
    );
    assert.equal(await app.get(ModelHotLoader).whenSubscribed(), true);
  });
  after(async () => app?.close());

  it('loads an announced model, swaps in a newer version, and ignores redeliveries', async () => {
    const registry = app.get(ModelRegistry);
    const first = randomUUID();
    await produceRaw(Topics.modelsPublished, modelId, published('v1', first));
    const v1 = await until(
      () => (registry.get(modelId)?.version === 'v1' ? registry.get(modelId) : undefined),
      'v1',
    );
    assert.equal(v1.uri, `/bundles/${modelId}-v1`);
    const list = await request(app.getHttpServer()).get('/v1/models').expect(200);
    assert.ok(list.body.data.some((m: { id: string }) => m.id === modelId));

    await produceRaw(Topics.modelsPublished, modelId, published('v1', first)); // redelivery
    await produceRaw(Topics.modelsPublished, modelId, published('v2'));
    await until(() => (registry.get(modelId)?.version === 'v2' ? true : undefined), 'v2');
    assert.deepEqual(
      backend.loaded.filter((uri) => uri.startsWith(`/bundles/${modelId}`)),
      [`/bundles/${modelId}-v1`, `/bundles/${modelId}-v2`],
    );
    await request(app.getHttpServer())
      .post('/v1/chat/completions')
      .send({ model: modelId, messages: [{ role: 'user', content: 'hi' }] })
      .expect(200);
  });

  it('sends an invalid announcement to the dead-letter topic with the reason, and keeps consuming', async () => {
    const marker = randomUUID();
    await produceRaw(
      Topics.modelsPublished,
      'bad',
      JSON.stringify({ apiVersion: MODELS_API_VERSION, id: marker, modelId: '' }),
    );
    const dead = await waitForMessage<{
      sourceTopic: string;
      reason: string;
      payload: string;
      consumer: string;
    }>(Topics.deadLetter, (m) => typeof m.payload === 'string' && m.payload.includes(marker));
    assert.equal(dead.sourceTopic, Topics.modelsPublished);
    assert.match(dead.reason, /modelId/);
    assert.match(dead.consumer, /^lvr-api-/);
    await produceRaw(Topics.modelsPublished, modelId, published('v3'));
    await until(
      () => (app.get(ModelRegistry).get(modelId)?.version === 'v3' ? true : undefined),
      'v3 after a bad message',
    );
  });

  it('<id>@<version> addresses an exact version (kept loaded, or loaded on demand); 404 for an unknown one; /v1/models lists versions', async () => {
    const id = `ver-${randomUUID().slice(0, 8)}`;
    const announce = (version: string) =>
      produceRaw(
        Topics.modelsPublished,
        id,
        JSON.stringify({
          apiVersion: MODELS_API_VERSION,
          id: randomUUID(),
          timestamp: new Date().toISOString(),
          modelId: id,
          version,
          bundleUri: `/bundles/${id}-${version}`,
        }),
      );
    const registry = app.get(ModelRegistry);
    const server = app.getHttpServer();
    const chat = (model: string) =>
      request(server)
        .post('/v1/chat/completions')
        .send({ model, messages: [{ role: 'user', content: 'hi' }] });
    for (const v of ['v1', 'v2', 'v3']) {
      await announce(v);
      await until(() => (registry.get(id)?.version === v ? true : undefined), v);
    }
    const loads = () => backend.loaded.filter((uri) => uri.startsWith(`/bundles/${id}-`));
    assert.deepEqual(loads(), [`/bundles/${id}-v1`, `/bundles/${id}-v2`, `/bundles/${id}-v3`]);

    const current = await chat(id).expect(200);
    assert.equal(current.body.model, id);
    const previous = await chat(`${id}@v2`).expect(200); // the replaced version is still loaded
    assert.equal(previous.body.model, `${id}@v2`);
    assert.equal(loads().length, 3, 'no reload for the previous version');
    const old = await chat(`${id}@v1`).expect(200); // published, evicted: loaded on demand
    assert.equal(old.body.model, `${id}@v1`);
    assert.deepEqual(loads().slice(3), [`/bundles/${id}-v1`]);
    assert.equal(registry.get(id)?.version, 'v3', 'on-demand loads do not change the current version');

    const missing = await chat(`${id}@v9`).expect(404);
    assert.equal(missing.body.error.code, 'model_not_found');
    assert.equal(missing.body.error.param, 'model');
    await chat(`nope-${id}@v1`).expect(404);

    const list = await request(server).get('/v1/models').expect(200);
    const card = list.body.data.find((m: { id: string }) => m.id === id);
    assert.equal(card.version, 'v3');
    assert.deepEqual(
      card.versions.map((v: { ref: string; current: boolean }) => [v.ref, v.current]),
      [
        [`${id}@v1`, false],
        [`${id}@v2`, false],
        [`${id}@v3`, true],
      ],
    );
    const one = await request(server).get(`/v1/models/${id}@v2`).expect(200);
    assert.equal(one.body.id, `${id}@v2`);
    assert.equal(one.body.version, 'v2');
    assert.equal(one.body.parent, id);
    await request(server).get(`/v1/models/${id}@v9`).expect(404);
  });
});
