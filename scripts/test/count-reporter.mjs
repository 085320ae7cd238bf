// node:test reporter that writes the per-file test counts as JSON (rules in counting.mjs).
import { TestTally } from './counting.mjs';

export default async function* countReporter(source) {
  const tally = new TestTally();
  for await (const event of source) tally.add(event);
  yield JSON.stringify(tally);
}
