import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ObjectStore, objectStoreConfigFromEnv } from '@lvr/storage';
import { BundleError } from '../src/errors';
import { LvrEngine } from '../src/engine';
import { S3BundleSource } from '../src/bundle/s3-source';
import { REPO_ROOT } from './helpers/python';

// The engine's s3:// bundle source against the stack's real MinIO (LVR_S3_* variables; missing ones fail).

const DEMO = path.join(REPO_ROOT, 'models', 'lvr-tiny-demo');
const BUCKET = 'lvr-engine-tests';

/** Counts object downloads, to prove the cache is reused (no timing involved). */
class CountingStore extends ObjectStore {
  downloads = 0;
  override async getFile(bucket: string, key: string, file: string): Promise<void> {
    this.downloads++;
    return super.getFile(bucket, key, file);
  }
}

async function greedy(engine: LvrEngine): Promise<number[]> {
  const ids: number[] = [];
  for await (const d of engine.generate({
    messages: [{ role: 'user', content: 'Hi' }],
    sampling: { temperature: 0, maxTokens: 4, ignoreEos: true },
  }))
    ids.push(...d.tokenIds);
  return ids;
}

describe('S3BundleSource over MinIO', () => {
  const run = `s3src-${randomUUID().slice(0, 8)}`;
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lvr-s3-cache-'));
  let store: CountingStore;

  before(async () => {
    store = new CountingStore(objectStoreConfigFromEnv()); // throws naming the missing LVR_S3_* variables
    await store.ensureBucket(BUCKET);
    await store.uploadDirectory(DEMO, BUCKET, `${run}/good`, ['manifest.json', '_COMPLETE']);
    const files = fs.readdirSync(DEMO).filter((f) => f !== '_COMPLETE');
    for (const f of files) await store.putFile(BUCKET, `${run}/partial/${f}`, path.join(DEMO, f));
    await store.uploadDirectory(DEMO, BUCKET, `${run}/tampered`, ['manifest.json', '_COMPLETE']);
    const template = fs.readFileSync(path.join(DEMO, 'chat_template.jinja'));
    const flipped = Buffer.from(template);
    flipped[0] ^= 1; // same size, different sha256
    await store.put(BUCKET, `${run}/tampered/chat_template.jinja`, flipped);
  });

  after(async () => {
    await store?.removePrefix(BUCKET, `${run}/`);
    fs.rmSync(cacheDir, { recursive: true, force: true });
  });

  it('loads a complete bundle into a cache keyed by the manifest sha256, then reuses it', async () => {
    const uri = `s3://${BUCKET}/${run}/good`;
    const digest = JSON.parse(fs.readFileSync(path.join(DEMO, '_COMPLETE'), 'utf8'))
      .manifest_sha256 as string;
    const engine = await LvrEngine.load(new S3BundleSource(uri, { store, cacheDir }));
    const local = await LvrEngine.load(DEMO);
    try {
      assert.deepEqual(await greedy(engine), await greedy(local), 'same tokens as the local bundle');
    } finally {
      await engine.close();
      await local.close();
    }
    const manifest = JSON.parse(fs.readFileSync(path.join(DEMO, 'manifest.json'), 'utf8')) as {
      files: unknown[];
    };
    assert.equal(store.downloads, manifest.files.length, 'every listed file downloaded once');
    assert.ok(fs.existsSync(path.join(cacheDir, digest, 'decoder.onnx.data')));
    const again = await LvrEngine.load(new S3BundleSource(uri, { store, cacheDir }));
    await again.close();
    assert.equal(store.downloads, manifest.files.length, 'the second load downloads nothing');
  });

  it('refuses a bundle without _COMPLETE before downloading anything', async () => {
    const before = store.downloads;
    await assert.rejects(
      LvrEngine.load(new S3BundleSource(`s3://${BUCKET}/${run}/partial`, { store, cacheDir })),
      (e: unknown) => e instanceof BundleError && /is incomplete: _COMPLETE marker missing/.test(e.message),
    );
    assert.equal(store.downloads, before);
  });

  it('refuses a bundle whose file does not match its manifest sha256', async () => {
    const tamperedCache = fs.mkdtempSync(path.join(os.tmpdir(), 'lvr-s3-cache-t-'));
    try {
      await assert.rejects(
        LvrEngine.load(
          new S3BundleSource(`s3://${BUCKET}/${run}/tampered`, { store, cacheDir: tamperedCache }),
        ),
        (e: unknown) => e instanceof BundleError && /sha256 mismatch for chat_template.jinja/.test(e.message),
      );
    } finally {
      fs.rmSync(tamperedCache, { recursive: true, force: true });
    }
  });
});
