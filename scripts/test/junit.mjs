// Reads pytest's JUnit XML summary into {passed, failed, skipped}.
export function parseJUnitCounts(xml) {
  const suites = [...xml.matchAll(/<testsuite\b([^>]*)>/g)];
  if (suites.length === 0) return undefined;
  const counts = { passed: 0, failed: 0, skipped: 0 };
  for (const [, attrs] of suites) {
    const num = (name) => Number.parseInt(new RegExp(`\\b${name}="(\\d+)"`).exec(attrs)?.[1] ?? '0', 10);
    const tests = num('tests');
    const failed = num('failures') + num('errors');
    const skipped = num('skipped');
    counts.failed += failed;
    counts.skipped += skipped;
    counts.passed += Math.max(0, tests - failed - skipped);
  }
  return counts;
}
