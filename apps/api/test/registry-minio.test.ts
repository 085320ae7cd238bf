import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { MODELS_API_VERSION, Topics } from '@lvr/contracts';
import { ObjectStore, objectStoreConfigFromEnv } from '@lvr/storage';
import request from 'supertest';
import { ensureTopics, produceRaw } from '../../../tests/support/kafka';
import { requireEnv } from '../../../tests/support/env';
import { ModelHotLoader } from '../src/hotload/model-hot-loader';
import { EngineBackend } from '../src/inference/engine-backend';
import { ModelRegistry } from '../src/registry/model-registry';
import { S3BundleResolver } from '../src/registry/s3-bundle-resolver';
import { bootApp } from './support/app';
import { DEMO_BUNDLE } from './support/server-process';

// Model registry over real MinIO and Kafka from the test stack with the real engine: an s3:// bundle configured at
// startup, an incomplete one refused, and a new version announced on lvr.models.published hot-loaded and served.

describe('model registry: MinIO bundles and hot-load (real engine)', () => {
  let app: NestExpressApplication;
  let store: ObjectStore;
  const bucket = 'lvr-api-test';
  const run = randomUUID().slice(0, 8);
  const v1 = `s3://${bucket}/models/${run}/v1`;
  const v2 = `s3://${bucket}/models/${run}/v2`;
  const partial = `s3://${bucket}/models/${run}/partial`;
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lvr-bundle-cache-'));

  before(async () => {
    requireEnv('LVR_S3_ENDPOINT');
    const brokers = requireEnv('LVR_KAFKA_BROKERS').split(',');
    store = new ObjectStore(objectStoreConfigFromEnv());
    await store.ensureBucket(bucket);
    await store.uploadDirectory(DEMO_BUNDLE, bucket, `models/${run}/v1`, ['manifest.json', '_COMPLETE']);
    await store.uploadDirectory(DEMO_BUNDLE, bucket, `models/${run}/v2`, ['manifest.json', '_COMPLETE']);
    await store.putFile(
      bucket,
      `models/${run}/partial/manifest.json`,
      path.join(DEMO_BUNDLE, 'manifest.json'),
    );
    await ensureTopics([Topics.modelsPublished, Topics.deadLetter]);
    app = await bootApp(
      {
        models: [
          { id: 'minio-demo', uri: v1 },
          { id: 'partial', uri: partial },
        ],
        kafkaBrokers: brokers,
      },
      new EngineBackend({ threads: 1 }),
      { resolver: new S3BundleResolver(objectStoreConfigFromEnv(), cacheDir) },
    );
  });
  after(async () => {
    await app?.close();
    await store?.removePrefix(bucket, `models/${run}/`);
  });

  it('serves a bundle from an s3:// URI and refuses one without _COMPLETE', async () => {
    const registry = app.get(ModelRegistry);
    assert.ok(registry.get('minio-demo'), 'the complete bundle is loaded');
    assert.equal(registry.get('partial'), undefined, 'the incomplete bundle is not');
    assert.match(registry.startupError ?? '', /is incomplete: _COMPLETE marker missing/);
    const res = await request(app.getHttpServer())
      .post('/v1/chat/completions')
      .send({ model: 'minio-demo', max_tokens: 4, messages: [{ role: 'user', content: 'hi' }] })
      .expect(200);
    assert.equal(res.body.model, 'minio-demo');
    assert.ok(res.body.usage.completion_tokens >= 1);
  });

  it('hot-loads a version announced on lvr.models.published and keeps serving', async () => {
    assert.equal(await app.get(ModelHotLoader).whenSubscribed(), true);
    const registry = app.get(ModelRegistry);
    const before = registry.get('minio-demo')!;
    await produceRaw(
      Topics.modelsPublished,
      'minio-demo',
      JSON.stringify({
        apiVersion: MODELS_API_VERSION,
        id: randomUUID(),
        timestamp: new Date().toISOString(),
        modelId: 'minio-demo',
        version: 'v2',
        bundleUri: v2,
      }),
    );
    const deadline = Date.now() + 60_000;
    while (registry.get('minio-demo')?.version !== 'v2') {
      if (Date.now() > deadline) throw new Error('v2 was not hot-loaded');
      await new Promise((r) => setTimeout(r, 100));
    }
    const after = registry.get('minio-demo')!;
    assert.notEqual(after, before);
    assert.equal(after.uri, v2);
    await request(app.getHttpServer())
      .post('/v1/chat/completions')
      .send({ model: 'minio-demo', max_tokens: 3, messages: [{ role: 'user', content: 'again' }] })
      .expect(200);
  });
});
