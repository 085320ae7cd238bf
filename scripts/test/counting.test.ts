import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');
// The counting rules are an ES module shared with run-all.mjs; this file is compiled to CommonJS.
const counting = import('./counting.mjs');

type Event = { type: string; data: Record<string, unknown> };

function pass(file: string, name: string, extra: Record<string, unknown> = {}): Event {
  return { type: 'test:pass', data: { file, name, nesting: 0, ...extra } };
}
function fail(file: string, name: string, extra: Record<string, unknown> = {}): Event {
  return { type: 'test:fail', data: { file, name, nesting: 0, ...extra } };
}

describe('TestTally (node:test events to per-file counts)', () => {
  test('a file that declared no test is not counted as a pass', async () => {
    const { TestTally } = await counting;
    const tally = new TestTally();
    tally.add(pass('/r/empty.test.ts', '/r/empty.test.ts'));
    assert.deepEqual(tally.toJSON().files['/r/empty.test.ts'], {
      passed: 0,
      failed: 0,
      skipped: 0,
      fileFailed: false,
    });
  });

  test('leaf tests count, suites do not, a suite failing in its hooks and a failing file count once', async () => {
    const { TestTally } = await counting;
    const tally = new TestTally();
    const f = '/r/a.test.ts';
    tally.add(pass(f, 'leaf one', { nesting: 1 }));
    tally.add(fail(f, 'leaf two', { nesting: 1 }));
    tally.add(pass(f, 'skipped leaf', { nesting: 1, skip: true }));
    tally.add(fail(f, 'suite', { details: { type: 'suite', error: { failureType: 'subtestsFailed' } } }));
    tally.add(
      fail(f, 'suite with a failing before()', {
        details: { type: 'suite', error: { failureType: 'hook' } },
      }),
    );
    tally.add(fail(f, f));
    tally.add({ type: 'test:diagnostic', data: { message: 'tests 3' } });
    assert.deepEqual(tally.toJSON().files[f], { passed: 1, failed: 3, skipped: 1, fileFailed: true });
  });
});

describe('accountFiles', () => {
  test('files with no tests or no report count as one failure each, named', async () => {
    const { accountFiles } = await counting;
    const reported = {
      files: {
        '/repo/libs/x/test/ok.test.ts': { passed: 2, failed: 0, skipped: 1 },
        '/repo/libs/x/test/empty.test.ts': { passed: 0, failed: 0, skipped: 0 },
      },
    };
    const files = [
      'libs/x/test/ok.test.ts',
      'libs/x/test/empty.test.ts',
      'libs/x/test/never-reported.test.ts',
    ];
    const { byFile, empty } = accountFiles(files, reported, '/repo');
    assert.deepEqual(empty, ['libs/x/test/empty.test.ts', 'libs/x/test/never-reported.test.ts']);
    assert.deepEqual(byFile['libs/x/test/ok.test.ts'], { passed: 2, failed: 0, skipped: 1 });
    assert.deepEqual(byFile['libs/x/test/empty.test.ts'], { passed: 0, failed: 1, skipped: 0 });
  });
});

describe('stack checks apart from product tests', () => {
  test('tests/k8s and tests/integration/kafka.test.ts are stack checks, everything else is product', async () => {
    const { isStackCheck } = await counting;
    assert.equal(isStackCheck('tests/k8s/helm.test.ts'), true);
    assert.equal(isStackCheck('tests/k8s/sub/dir.test.ts'), true);
    assert.equal(isStackCheck('tests/integration/kafka.test.ts'), true);
    assert.equal(isStackCheck('tests/integration/kafka-extra.test.ts'), false);
    assert.equal(isStackCheck('tests/k8s-like/x.test.ts'), false);
    assert.equal(isStackCheck('apps/trainer/test/trainer.test.ts'), false);
  });

  test('splitByKind sums per kind and the summary prints both above the total', async () => {
    const { splitByKind, summaryLines } = await counting;
    const { product, stack } = splitByKind({
      'tests/k8s/helm.test.ts': { passed: 3, failed: 0, skipped: 0 },
      'tests/integration/kafka.test.ts': { passed: 2, failed: 1, skipped: 0 },
      'apps/api/test/chat.test.ts': { passed: 10, failed: 0, skipped: 2 },
      'libs/x/test/empty.test.ts': { passed: 0, failed: 1, skipped: 0 },
    });
    assert.deepEqual(product, { passed: 10, failed: 1, skipped: 2 });
    assert.deepEqual(stack, { passed: 5, failed: 1, skipped: 0 });
    const lines = summaryLines({
      product,
      stack,
      emptyFiles: ['libs/x/test/empty.test.ts'],
      noPythonTests: true,
    });
    assert.equal(lines[0], '[test] product tests: 10 passed, 1 failed, 2 skipped');
    assert.match(
      lines[1],
      /^\[test\] stack checks \(tests\/k8s\/, tests\/integration\/kafka\.test\.ts\): 5 passed, 1 failed/,
    );
    assert.ok(lines.includes('[test] FAILED libs/x/test/empty.test.ts: no tests ran in this file'));
    assert.ok(lines.includes('[test] FAILED pytest: no tests collected'));
  });
});

describe('pytestCounts', () => {
  test('pytest collecting nothing fails the suite', async () => {
    const { pytestCounts } = await counting;
    assert.deepEqual(pytestCounts(5, { passed: 0, failed: 0, skipped: 0 }), {
      passed: 0,
      failed: 1,
      skipped: 0,
      noTests: true,
    });
    assert.equal(pytestCounts(5, undefined).failed, 1);
    // A report with no test case (for example every file deselected) is the same failure.
    assert.equal(pytestCounts(0, { passed: 0, failed: 0, skipped: 0 }).noTests, true);
  });

  test('normal runs keep their counts; an unexplained non-zero exit is one failure', async () => {
    const { pytestCounts } = await counting;
    assert.deepEqual(pytestCounts(0, { passed: 4, failed: 0, skipped: 1 }), {
      passed: 4,
      failed: 0,
      skipped: 1,
      noTests: false,
    });
    assert.equal(pytestCounts(1, { passed: 4, failed: 2, skipped: 0 }).failed, 2);
    assert.equal(pytestCounts(2, { passed: 4, failed: 0, skipped: 0 }).failed, 1);
    assert.equal(pytestCounts(3, undefined).failed, 1);
  });
});

describe('count-reporter on real test files', () => {
  test('a .test.ts file without tests is reported as a failure naming it', async () => {
    const { accountFiles } = await counting;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lvr-count-reporter-'));
    try {
      const empty = path.join(dir, 'empty.test.ts');
      const one = path.join(dir, 'one.test.ts');
      fs.writeFileSync(empty, "import assert from 'node:assert/strict';\nassert.equal(1 + 1, 2);\n");
      fs.writeFileSync(one, "import { test } from 'node:test';\ntest('runs', () => undefined);\n");
      const out = path.join(dir, 'counts.json');
      const run = spawnSync(
        process.execPath,
        [
          '-r',
          '@swc-node/register',
          '--test',
          `--test-reporter=${path.join(ROOT, 'scripts/test/count-reporter.mjs')}`,
          `--test-reporter-destination=${out}`,
          empty,
          one,
        ],
        // Without NODE_TEST_CONTEXT the child is a runner of its own, not a subtest of this one.
        { cwd: ROOT, encoding: 'utf8', env: { ...process.env, NODE_TEST_CONTEXT: undefined } },
      );
      assert.equal(run.status, 0, run.stderr);
      const reported = JSON.parse(fs.readFileSync(out, 'utf8'));
      assert.equal(reported.files[empty]?.passed ?? 0, 0, 'the empty file is not a pass');
      const { byFile, empty: emptyFiles } = accountFiles(['empty.test.ts', 'one.test.ts'], reported, dir);
      assert.deepEqual(emptyFiles, ['empty.test.ts']);
      assert.deepEqual(byFile['empty.test.ts'], { passed: 0, failed: 1, skipped: 0 });
      assert.deepEqual(byFile['one.test.ts'], { passed: 1, failed: 0, skipped: 0 });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
