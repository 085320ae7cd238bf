// How `npm test` counts: which node:test events are tests, which files ran none, which suites check the stack
// rather than the product, and the summary printed above the final `N passed, N failed` line.
import path from 'node:path';

/** Suites that check the loopback stack itself (Kubernetes API, Helm, Kafka), not the product. */
export const STACK_CHECKS = ['tests/k8s/', 'tests/integration/kafka.test.ts'];

/** True for a test file (relative to the repository root, any separator) that checks the stack. */
export function isStackCheck(file) {
  const rel = file.split(path.sep).join('/');
  return STACK_CHECKS.some((check) => (check.endsWith('/') ? rel.startsWith(check) : rel === check));
}

export function emptyCounts() {
  return { passed: 0, failed: 0, skipped: 0 };
}

export function addCounts(into, counts) {
  into.passed += counts.passed;
  into.failed += counts.failed;
  into.skipped += counts.skipped;
  return into;
}

/**
 * Tallies node:test reporter events per file: leaf tests count, suites do not (a suite that failed in its own hooks
 * has no failing leaf, so it counts once). Node reports each file as a top-level test named after the file: it
 * passes when the file declared no test at all and fails when the file itself failed (import error, uncaught
 * exception); neither is a test, so the pass is not counted and the failure is.
 */
export class TestTally {
  constructor() {
    this.files = {};
  }

  add(event) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') return;
    const data = event.data;
    const counts = (this.files[data.file ?? '(unknown file)'] ??= { ...emptyCounts(), fileFailed: false });
    const failed = event.type === 'test:fail';
    if (isFileWrapper(data)) {
      if (failed) {
        counts.failed += 1;
        counts.fileFailed = true;
      }
      return;
    }
    if (data.details?.type === 'suite') {
      if (failed && data.details?.error?.failureType !== 'subtestsFailed') counts.failed += 1;
      return;
    }
    if (data.skip || data.todo) counts.skipped += 1;
    else if (failed) counts.failed += 1;
    else counts.passed += 1;
  }

  /** `{ files: { absolutePath: counts } }`: what the reporter writes. */
  toJSON() {
    return { files: this.files };
  }
}

function isFileWrapper(data) {
  return data.nesting === 0 && data.file !== undefined && path.resolve(data.name ?? '') === data.file;
}

/**
 * Per-file counts of the files the runner was given, keyed relative to `root`, from the reporter's output. A file
 * that ran no test (none declared, or none reported) counts as one failure and is named in `empty`.
 */
export function accountFiles(expectedFiles, reported, root) {
  const byFile = {};
  const empty = [];
  const seen = new Map(Object.entries(reported.files ?? {}).map(([abs, c]) => [path.resolve(root, abs), c]));
  for (const given of expectedFiles) {
    const absolute = path.resolve(root, given);
    const relative = path.relative(root, absolute);
    const file = relative.startsWith('..') ? absolute : relative;
    const counts = seen.get(absolute);
    const total = counts ? counts.passed + counts.failed + counts.skipped : 0;
    if (total === 0) {
      empty.push(file);
      byFile[file] = { passed: 0, failed: 1, skipped: 0 };
    } else byFile[file] = { passed: counts.passed, failed: counts.failed, skipped: counts.skipped };
  }
  return { byFile, empty };
}

/** Splits per-file counts into product tests and stack checks. */
export function splitByKind(byFile) {
  const product = emptyCounts();
  const stack = emptyCounts();
  for (const [file, counts] of Object.entries(byFile))
    addCounts(isStackCheck(file) ? stack : product, counts);
  return { product, stack };
}

/**
 * pytest's result as counts (`junitCounts` undefined when it wrote no report). Exit 5 ("no tests collected") or a
 * report with no test is a failure of the suite (`noTests`), as is any other non-zero exit no failing test explains.
 */
export function pytestCounts(exitCode, junitCounts) {
  const counts = junitCounts ? { ...junitCounts } : emptyCounts();
  const total = counts.passed + counts.failed + counts.skipped;
  if (exitCode === 5 || (junitCounts && total === 0))
    return { ...counts, failed: counts.failed + 1, noTests: true };
  if (exitCode !== 0 && counts.failed === 0) counts.failed = 1;
  return { ...counts, noTests: false };
}

/** Lines printed above the final total: product tests and stack checks apart, and every file that ran no test. */
export function summaryLines({ product, stack, emptyFiles = [], noPythonTests = false }) {
  const fmt = (c) => `${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped`;
  const lines = [
    `[test] product tests: ${fmt(product)}`,
    `[test] stack checks (${STACK_CHECKS.join(', ')}): ${fmt(stack)}`,
  ];
  for (const file of emptyFiles) lines.push(`[test] FAILED ${file}: no tests ran in this file`);
  if (noPythonTests) lines.push('[test] FAILED pytest: no tests collected');
  return lines;
}
