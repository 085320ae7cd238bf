import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ObjectNotFoundError, ObjectStore, objectStoreConfigFromEnv, parseS3Uri } from '@lvr/storage';
import { requireEnv, uniqueName } from '../../../tests/support/env';

describe('ObjectStore against the real MinIO', () => {
  let store: ObjectStore;
  const bucket = uniqueName('it-storage');

  before(async () => {
    requireEnv('LVR_S3_ENDPOINT');
    store = new ObjectStore({ ...objectStoreConfigFromEnv(), partSize: 5 * 1024 * 1024 });
    await store.ensureBucket(bucket);
    await store.ensureBucket(bucket); // idempotent
  });

  after(async () => {
    if (store) await store.removePrefix(bucket, '');
  });

  test('put, get, stat, list and delete a small object', async () => {
    const body = Buffer.from('hello latent world');
    const put = await store.put(bucket, 'a/b/hello.txt', body, 'text/plain');
    assert.equal(put.size, body.length);
    assert.equal(put.sha256, createHash('sha256').update(body).digest('hex'));
    assert.deepEqual(await store.get(bucket, 'a/b/hello.txt'), body);
    assert.equal((await store.stat(bucket, 'a/b/hello.txt')).size, body.length);
    await store.put(bucket, 'a/other.txt', Buffer.from('x'));
    assert.deepEqual(
      (await store.list(bucket, 'a/')).map((o) => o.key),
      ['a/b/hello.txt', 'a/other.txt'],
    );
    await store.remove(bucket, 'a/b/hello.txt');
    assert.equal(await store.exists(bucket, 'a/b/hello.txt'), false);
    assert.deepEqual(
      (await store.list(bucket, 'a/')).map((o) => o.key),
      ['a/other.txt'],
    );
  });

  test('a 20 MB upload goes multipart and comes back byte-identical', async () => {
    const body = randomBytes(20 * 1024 * 1024);
    const expected = createHash('sha256').update(body).digest('hex');
    const put = await store.put(bucket, 'big/blob.bin', body);
    assert.equal(put.sha256, expected);
    const info = await store.stat(bucket, 'big/blob.bin');
    assert.equal(info.size, body.length);
    // Only multipart uploads get an ETag ending in -<parts>; a single PUT's ETag is a plain MD5.
    assert.match(info.etag ?? '', /^[0-9a-f]{32}-\d+$/);
    const back = await store.get(bucket, 'big/blob.bin');
    assert.equal(createHash('sha256').update(back).digest('hex'), expected);
  });

  test('a missing object raises ObjectNotFoundError naming it', async () => {
    await assert.rejects(store.get(bucket, 'nope/missing.bin'), (error: unknown) => {
      assert.ok(error instanceof ObjectNotFoundError);
      assert.match((error as Error).message, new RegExp(`s3://${bucket}/nope/missing.bin`));
      return true;
    });
    await assert.rejects(store.stat(bucket, 'nope/missing.bin'), ObjectNotFoundError);
  });

  test('folders round-trip with relative paths', async () => {
    const src = fs.mkdtempSync(path.join(os.tmpdir(), 'lvr-up-'));
    fs.mkdirSync(path.join(src, 'onnx'));
    fs.writeFileSync(path.join(src, 'onnx', 'decoder.onnx'), randomBytes(1000));
    fs.writeFileSync(path.join(src, 'manifest.json'), '{}');
    fs.writeFileSync(path.join(src, '_COMPLETE'), '');
    const uploaded = await store.uploadDirectory(src, bucket, 'bundles/m1', ['manifest.json', '_COMPLETE']);
    assert.deepEqual([...uploaded.keys()], ['onnx/decoder.onnx', 'manifest.json', '_COMPLETE']);
    const dest = fs.mkdtempSync(path.join(os.tmpdir(), 'lvr-down-'));
    const written = await store.downloadDirectory(bucket, 'bundles/m1', dest);
    assert.deepEqual(written.sort(), ['_COMPLETE', 'manifest.json', 'onnx/decoder.onnx']);
    assert.deepEqual(
      fs.readFileSync(path.join(dest, 'onnx', 'decoder.onnx')),
      fs.readFileSync(path.join(src, 'onnx', 'decoder.onnx')),
    );
  });

  test('s3 URIs are parsed and unsafe ones refused', () => {
    assert.deepEqual(parseS3Uri('s3://models/demo/v1/'), { bucket: 'models', key: 'demo/v1/' });
    assert.throws(() => parseS3Uri('s3://Bad_Bucket/x'), /invalid bucket/);
    assert.throws(() => parseS3Uri('s3://models/../etc'), /'\.\.'/);
    assert.throws(() => parseS3Uri('http://models/x'), /not an s3/);
  });
});
