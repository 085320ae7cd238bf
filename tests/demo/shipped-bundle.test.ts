/**
 * The shipped demo model (models/lvr-synthetic-demo, model (a) of the README's "Demo model") answers the synthetic
 * task above chance through the TypeScript engine, reasoning through a latent block: greedy answers at its 4 trained
 * latent steps to the single-object questions of a fresh `check` split (no image shared with training).
 * The threshold is measured, not a timing: 104 of these 256 answers were right when the bundle was shipped (40.6%,
 * Wilson 95% [34.8, 46.7]); the check allows a few answers of numeric drift and stays above chance (25%).
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { scoreBundle } from '../../scripts/demo/check-bundle';

const BUNDLE = path.join(__dirname, '../../models/lvr-synthetic-demo');
const MIN_ACCURACY = 0.36;

describe('shipped demo model', () => {
  it('opens a latent block and answers single-object synthetic questions above chance', async () => {
    const score = await scoreBundle(BUNDLE, { count: 256, steps: 4, levels: ['single'] });
    assert.equal(score.unparsed, 0, 'every answer carries a letter in <answer>');
    const withoutBlock = score.answers.filter(
      (a) => !a.includes('<|lvr_start|>') || !a.includes('<|lvr_end|>'),
    );
    assert.equal(
      withoutBlock.length,
      0,
      `answers without a latent block: ${withoutBlock.slice(0, 3).join(' | ')}`,
    );
    assert.ok(
      score.accuracy >= MIN_ACCURACY,
      `accuracy ${score.accuracy.toFixed(3)} [${score.wilson95.map((v) => v.toFixed(3)).join(', ')}] < ${MIN_ACCURACY}`,
    );
    assert.ok(score.wilson95[0] > 0.25, 'the lower 95% bound is above chance');
  });
});
