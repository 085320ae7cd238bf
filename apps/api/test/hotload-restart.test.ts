import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MODELS_API_VERSION, Topics } from '@lvr/contracts';
import { ObjectStore, objectStoreConfigFromEnv } from '@lvr/storage';
import { ensureTopics, produceRaw } from '../../../tests/support/kafka';
import { requireEnv } from '../../../tests/support/env';
import { DEMO_BUNDLE, startServer, type ServerProcess } from './support/server-process';

// Model versions across a restart, with real Kafka, real MinIO and real API processes (the real engine): a replica
// that starts after v2 was announced serves v2 from its first ready answer, not the LVR_MODELS version.

interface Card {
  id: string;
  version: string | null;
  lvr: { steps: number };
  versions: Array<{ ref: string; current: boolean; loaded: boolean }>;
}

describe('model versions after an API restart (Kafka + MinIO + API processes)', () => {
  const bucket = 'lvr-api-test';
  const run = randomUUID().slice(0, 8);
  const modelId = `restart-${run}`;
  const prefix = `models/${run}`;
  const uri = (v: string) => `s3://${bucket}/${prefix}/${v}`;
  let store: ObjectStore;
  let server: ServerProcess | undefined;
  let env: Record<string, string>;

  /** The demo bundle as version `v`, its manifest's default latent steps set to `steps` (so versions differ). */
  async function uploadVersion(v: string, steps: number): Promise<void> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `lvr-restart-${v}-`));
    fs.cpSync(DEMO_BUNDLE, dir, { recursive: true });
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
    manifest.lvr.steps = steps;
    const text = JSON.stringify(manifest);
    fs.writeFileSync(path.join(dir, 'manifest.json'), text);
    const sha = createHash('sha256').update(text).digest('hex');
    fs.writeFileSync(path.join(dir, '_COMPLETE'), JSON.stringify({ manifest_sha256: sha }));
    await store.uploadDirectory(dir, bucket, `${prefix}/${v}`, ['manifest.json', '_COMPLETE']);
    fs.rmSync(dir, { recursive: true, force: true });
  }

  async function card(url: string): Promise<Card> {
    const res = await fetch(`${url}/v1/models/${modelId}`);
    assert.equal(res.status, 200);
    return (await res.json()) as Card;
  }

  before(async () => {
    const brokers = requireEnv('LVR_KAFKA_BROKERS');
    requireEnv('LVR_S3_ENDPOINT');
    store = new ObjectStore(objectStoreConfigFromEnv());
    await store.ensureBucket(bucket);
    await uploadVersion('v1', 8);
    await uploadVersion('v2', 3);
    await ensureTopics([Topics.modelsPublished, Topics.deadLetter]);
    env = {
      LVR_MODELS: `${modelId}@v1=${uri('v1')}`,
      LVR_KAFKA_BROKERS: brokers,
      LVR_ENGINE_THREADS: '1',
      LVR_LOG_LEVEL: 'info',
    };
  });
  after(async () => {
    await server?.stop();
    await store?.removePrefix(bucket, `${prefix}/`);
  });

  it('publish v2, restart the API: it serves v2 (v1 stays addressable as <id>@v1)', async () => {
    server = await startServer(env);
    assert.equal((await card(server.url)).version, 'v1', 'LVR_MODELS version before any announcement');
    await produceRaw(
      Topics.modelsPublished,
      modelId,
      JSON.stringify({
        apiVersion: MODELS_API_VERSION,
        id: randomUUID(),
        timestamp: new Date().toISOString(),
        modelId,
        version: 'v2',
        bundleUri: uri('v2'),
      }),
    );
    const deadline = Date.now() + 60_000;
    while ((await card(server.url)).version !== 'v2') {
      if (Date.now() > deadline) throw new Error(`v2 was not hot-loaded:\n${server.output().slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    await server.stop();

    // Same configuration (LVR_MODELS still names v1): the restarted replica must catch up before it is ready.
    server = await startServer(env);
    const first = await card(server.url);
    assert.equal(first.version, 'v2', 'the first ready answer already serves the newest published version');
    assert.equal(first.lvr.steps, 3, "v2's bundle (its manifest says 3 latent steps)");
    assert.deepEqual(
      first.versions.filter((v) => v.current).map((v) => v.ref),
      [`${modelId}@v2`],
    );
    const chat = async (model: string) => {
      const res = await fetch(`${server!.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ model, max_tokens: 2, messages: [{ role: 'user', content: 'hi' }] }),
      });
      return { status: res.status, body: (await res.json()) as { model: string } };
    };
    const latest = await chat(modelId);
    assert.equal(latest.status, 200);
    const pinned = await chat(`${modelId}@v1`);
    assert.equal(pinned.status, 200);
    assert.equal(pinned.body.model, `${modelId}@v1`);
    assert.equal((await chat(`${modelId}@v7`)).status, 404);
  });
});
