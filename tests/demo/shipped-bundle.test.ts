/**
 * The shipped demo model (models/lvr-synthetic-demo) answers the synthetic task above chance through the TypeScript
 * engine: greedy answers to the single-object questions of a fresh `check` split (no image shared with training).
 * The threshold is measured, not a timing: 53 of these 128 answers were right when the bundle was shipped (41.4%,
 * Wilson 95% [33.2, 50.1]); the check allows a few answers of numeric drift and stays above chance (25%).
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { scoreBundle } from '../../scripts/demo/check-bundle';

const BUNDLE = path.join(__dirname, '../../models/lvr-synthetic-demo');
const MIN_ACCURACY = 0.35;

describe('shipped demo model', () => {
  it('answers single-object synthetic questions above chance through the TypeScript engine', async () => {
    const score = await scoreBundle(BUNDLE, { count: 128, steps: 0, levels: ['single'] });
    assert.equal(score.unparsed, 0, 'every answer carries a letter in <answer>');
    assert.ok(
      score.accuracy >= MIN_ACCURACY,
      `accuracy ${score.accuracy.toFixed(3)} [${score.wilson95.map((v) => v.toFixed(3)).join(', ')}] < ${MIN_ACCURACY}`,
    );
    assert.ok(score.wilson95[0] > 0.25, 'the lower 95% bound is above chance');
  });
});
