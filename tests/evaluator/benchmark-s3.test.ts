import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { BenchmarkValidationError, loadBenchmark, openBenchmarkSource } from '@lvr/data';
import { uniqueName } from '../support/env';
import { colourFixture, tempDir } from './support/fixtures';
import { testStore } from './support/harness';

describe('benchmark folders in MinIO (s3://)', () => {
  const store = testStore();
  const bucket = uniqueName('lvr-bench-s3').slice(0, 60);
  const dir = tempDir('s3-bench');

  before(async () => {
    await colourFixture(dir, 6);
    await store.ensureBucket(bucket);
    await store.uploadDirectory(dir, bucket, 'benchmarks/colours/1');
  });

  after(async () => {
    await store.removePrefix(bucket, '');
  });

  test('loads and validates the same records as the local folder, and reads images through the store', async () => {
    const source = openBenchmarkSource(`s3://${bucket}/benchmarks/colours/1/`, store);
    const loaded = await loadBenchmark(source);
    assert.deepEqual(
      loaded.records.map((r) => r.id),
      ['q0', 'q1', 'q2', 'q3', 'q4', 'q5'],
    );
    const image = await source.read('images/q3.png');
    assert.deepEqual(image, fs.readFileSync(path.join(dir, 'images', 'q3.png')));
    assert.equal(await source.read('images/absent.png'), undefined);
  });

  test('a broken record and a missing image are reported by record and field', async () => {
    const lines = fs.readFileSync(path.join(dir, 'test.jsonl'), 'utf8').trim().split('\n');
    const record = JSON.parse(lines[4]);
    record.options = [{ letter: 'A', text: '' }];
    lines[4] = JSON.stringify(record);
    await store.put(bucket, 'benchmarks/colours/2/test.jsonl', Buffer.from(lines.join('\n') + '\n'));
    await store.putFile(bucket, 'benchmarks/colours/2/benchmark.json', path.join(dir, 'benchmark.json'));
    for (const i of [0, 1, 2, 3, 4])
      await store.putFile(
        bucket,
        `benchmarks/colours/2/images/q${i}.png`,
        path.join(dir, 'images', `q${i}.png`),
      );
    const error = await loadBenchmark(
      openBenchmarkSource(`s3://${bucket}/benchmarks/colours/2`, store),
    ).catch((e: Error) => e);
    assert.ok(error instanceof BenchmarkValidationError);
    assert.deepEqual(
      error.issues.map((i) => [i.line, i.recordId, i.field]),
      [
        [5, 'q4', 'options[0].text'],
        [6, 'q5', 'image'],
      ],
    );
  });

  test('an s3:// benchmark without a configured store is refused with that reason', () => {
    assert.throws(() => openBenchmarkSource(`s3://${bucket}/x/`), /object store, but none is configured/);
  });
});
