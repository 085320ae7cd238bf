// node:test reporter that tallies leaf tests (suites excluded) and writes {passed, failed, skipped} as JSON.
export default async function* countReporter(source) {
  const counts = { passed: 0, failed: 0, skipped: 0 };
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const data = event.data;
    if (data.details?.type === 'suite') {
      // A suite that failed in its own hooks has no failing leaf to count.
      if (event.type === 'test:fail' && data.details?.error?.failureType !== 'subtestsFailed')
        counts.failed += 1;
      continue;
    }
    if (data.skip || data.todo) counts.skipped += 1;
    else if (event.type === 'test:pass') counts.passed += 1;
    else counts.failed += 1;
  }
  yield JSON.stringify(counts);
}
