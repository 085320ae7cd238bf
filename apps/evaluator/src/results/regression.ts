import { RegressionCheck, RegressionFinding } from '@lvr/contracts';
import { ScoreEntry } from '../scoring/protocols';
import { VersionPoint } from './types';

/**
 * Compares overall scores with the previous evaluation of the same schedule. A score regressed when even the upper
 * end of its 95% interval lies more than `margin` below the previous score: noise on small benchmarks (MMVP has 300
 * questions, ±5 points) does not raise the flag, a real drop does.
 */
export function checkRegression(
  current: ScoreEntry[],
  previous: VersionPoint | undefined,
  margin: number,
): RegressionCheck {
  if (!previous) return { regressed: false, margin, findings: [] };
  const findings: RegressionFinding[] = [];
  for (const score of current.filter((s) => s.group === 'overall')) {
    const before = previous.headline.find(
      (p) =>
        p.group === 'overall' &&
        p.benchmark === score.benchmark &&
        p.protocol === score.protocol &&
        p.config === score.config,
    );
    if (!before) continue;
    if (score.ciHigh < before.accuracy - margin)
      findings.push({
        name: score.benchmark,
        protocol: score.protocol,
        config: score.config,
        previousAccuracy: before.accuracy,
        accuracy: score.accuracy,
        drop: before.accuracy - score.accuracy,
      });
  }
  return { regressed: findings.length > 0, previousEvalId: previous.evalId, margin, findings };
}
