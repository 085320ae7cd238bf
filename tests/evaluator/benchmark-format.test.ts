import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  BenchmarkRegistry,
  BenchmarkValidationError,
  LocalBenchmarkSource,
  UnknownBenchmarkError,
  loadBenchmark,
} from '@lvr/data';
import { colourFixture, tempDir } from './support/fixtures';

async function loadError(dir: string): Promise<BenchmarkValidationError> {
  const error = await loadBenchmark(new LocalBenchmarkSource(dir)).then(
    () => assert.fail('expected the benchmark to be rejected'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof BenchmarkValidationError, String(error));
  return error;
}

function rewriteLine(dir: string, line: number, edit: (record: Record<string, unknown>) => void): void {
  const file = path.join(dir, 'test.jsonl');
  const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
  const record = JSON.parse(lines[line - 1]);
  edit(record);
  lines[line - 1] = JSON.stringify(record);
  fs.writeFileSync(file, lines.join('\n') + '\n');
}

describe('benchmark format', () => {
  test('loads a valid folder with its default split, records in order, and honours limit', async () => {
    const dir = tempDir('bench-ok');
    await colourFixture(dir);
    const loaded = await loadBenchmark(new LocalBenchmarkSource(dir));
    assert.equal(loaded.split, 'test');
    assert.deepEqual(
      loaded.records.map((r) => r.id),
      ['q0', 'q1', 'q2', 'q3'],
    );
    const limited = await loadBenchmark(new LocalBenchmarkSource(dir), { limit: 2 });
    assert.equal(limited.records.length, 2);
  });

  test('an invalid record is reported with file, line, record id and field', async () => {
    const dir = tempDir('bench-bad-answer');
    await colourFixture(dir);
    rewriteLine(dir, 2, (r) => (r.answer = 'C'));
    const error = await loadError(dir);
    assert.equal(error.issues.length, 1);
    assert.deepEqual(
      { ...error.issues[0], message: undefined },
      { file: 'test.jsonl', line: 2, recordId: 'q1', field: 'answer', message: undefined },
    );
    assert.match(
      error.message,
      /test\.jsonl line 2 record 'q1': field 'answer' must be one of the option letters A, B/,
    );
  });

  test('every problem is reported at once: bad option letter, missing image, bbox, duplicate id, bad JSON', async () => {
    const dir = tempDir('bench-many');
    await colourFixture(dir);
    rewriteLine(dir, 1, (r) => ((r.options as { letter: string }[])[1].letter = 'b'));
    rewriteLine(dir, 2, (r) => (r.image = 'images/missing.png'));
    rewriteLine(dir, 3, (r) => {
      r.bbox = [10, 10, 5, 20];
      r.id = 'q0';
    });
    fs.appendFileSync(path.join(dir, 'test.jsonl'), '{not json\n');
    const error = await loadError(dir);
    const fields = error.issues.map((i) => `${i.line}:${i.field}`).sort();
    assert.deepEqual(fields, ['1:options[1].letter', '2:image', '3:bbox', '5:(json)'].sort());
    // a record with issues is skipped for the duplicate check, so the broken line 3 cannot hide behind it
    assert.ok(error.issues.find((i) => i.field === 'image')?.message.includes('images/missing.png'));
  });

  test('a duplicate id names the first line; an image path escaping the folder is refused', async () => {
    const dir = tempDir('bench-dup');
    await colourFixture(dir);
    rewriteLine(dir, 4, (r) => (r.id = 'q1'));
    rewriteLine(dir, 3, (r) => (r.image = '../outside.png'));
    const error = await loadError(dir);
    assert.deepEqual(
      error.issues.map((i) => [i.line, i.field, i.message]),
      [
        [3, 'image', 'must be a relative path inside the benchmark'],
        [4, 'id', 'duplicates line 2'],
      ],
    );
  });

  test('manifest problems: wrong format, unknown split, missing split file', async () => {
    const dir = tempDir('bench-manifest');
    await colourFixture(dir, 4, { format: 'other/v0' as never });
    assert.match(
      (await loadError(dir)).message,
      /benchmark\.json: field 'format' must be "lvr-benchmark\/v1"/,
    );

    const dir2 = tempDir('bench-split');
    await colourFixture(dir2, 4, { splits: ['test', 'heldout'] });
    const error = await loadBenchmark(new LocalBenchmarkSource(dir2), { split: 'heldout' }).catch(
      (e: Error) => e,
    );
    assert.match(String(error), /heldout\.jsonl: field '\(file\)' is missing/);
    const unknownSplit = await loadBenchmark(new LocalBenchmarkSource(dir2), { split: 'val' }).catch(
      (e: Error) => e,
    );
    assert.match(String(unknownSplit), /does not list the requested split "val"/);
  });

  test('a category not declared in the manifest is an error', async () => {
    const dir = tempDir('bench-cat');
    await colourFixture(dir);
    rewriteLine(dir, 1, (r) => (r.category = 'texture'));
    assert.match(
      (await loadError(dir)).message,
      /line 1 record 'q0': field 'category' "texture" is not listed/,
    );
  });

  test('the registry resolves names, takes configured entries and rejects unknown names', () => {
    const registry = BenchmarkRegistry.fromEnv({
      LVR_BENCHMARKS_DIR: '/data/b',
      LVR_BENCHMARKS: 'mine=s3://bkt/mine/',
    });
    assert.equal(registry.resolve('synthetic-grounding'), '/data/b/synthetic-grounding');
    assert.equal(registry.resolve('mine'), 's3://bkt/mine/');
    assert.equal(registry.resolve('anything', '/explicit'), '/explicit');
    assert.throws(() => registry.resolve('nope'), UnknownBenchmarkError);
    assert.throws(() => BenchmarkRegistry.fromEnv({ LVR_BENCHMARKS: 'broken' }), /name=uri/);
  });

  test('synthetic-grounding is generated on first use into the benchmarks dir, and then reused', async () => {
    const dir = tempDir('registry');
    const registry = BenchmarkRegistry.fromEnv({ LVR_BENCHMARKS_DIR: dir });
    const folder = registry.prepare('synthetic-grounding');
    assert.equal(folder, path.join(dir, 'synthetic-grounding'));
    const loaded = await loadBenchmark(new LocalBenchmarkSource(folder));
    assert.equal(loaded.split, 'test');
    assert.equal(loaded.records.length, 500);
    assert.ok(loaded.records.every((r) => r.bbox && r.options.some((o) => o.letter === r.answer)));
    const stamp = fs.statSync(path.join(folder, 'benchmark.json')).mtimeMs;
    registry.prepare('synthetic-grounding');
    assert.equal(fs.statSync(path.join(folder, 'benchmark.json')).mtimeMs, stamp, 'not regenerated');
    assert.deepEqual(fs.readdirSync(dir), ['synthetic-grounding'], 'no staging folder left behind');
  });
});
