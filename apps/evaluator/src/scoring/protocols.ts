import { wilsonInterval } from './stats';

/** What scoring needs from one completed sample (all of it is in samples.jsonl, so rescoring needs no model). */
export interface ScorableSample {
  benchmark: string;
  config: string;
  sampleId: string;
  category: string;
  subtask?: string;
  pairId?: string;
  /** Robust reading matched the expected answer. */
  correct: boolean;
  /** Robust reading found nothing. */
  unparseable: boolean;
  /** Upstream LVR extraction equals the label exactly. */
  upstreamCorrect: boolean;
  /** The response had an `<answer>` tag (the upstream rule's precondition for a meaningful extraction). */
  upstreamTagged: boolean;
  /** The API never answered (after retries); counted as wrong and shown separately. */
  failed: boolean;
}

export interface ScoreEntry {
  benchmark: string;
  config: string;
  protocol: ProtocolId;
  /** `overall`, `category:<name>` or `subtask:<name>`. */
  group: string;
  unit: 'question' | 'pair';
  correct: number;
  total: number;
  accuracy: number;
  /** 95% Wilson interval. */
  ciLow: number;
  ciHigh: number;
  unparseable: number;
  failed: number;
}

export const PROTOCOLS = {
  'lvr-answer-tag':
    'LVR upstream: first character inside the last <answer>…</answer>, exact match, per question',
  'mc-letter': 'multiple choice, robust letter/option-text parsing, per question',
  'mmvp-question': 'MMVP per-question accuracy (robust letter parsing; LVR paper headline metric)',
  'mmvp-pair': 'MMVP pair accuracy: both questions of a pair right (official metric; robust letter parsing)',
  'vstar-category':
    'V* Bench per category and overall, generation + robust letter (not the official option likelihood)',
  'blink-subtask': 'BLINK per subtask and overall, robust letter parsing',
} as const;

export type ProtocolId = keyof typeof PROTOCOLS;

export function isProtocolId(value: string): value is ProtocolId {
  return Object.prototype.hasOwnProperty.call(PROTOCOLS, value);
}

/** Other names benchmark.json may use (the synthetic generator writes `lvr`). */
const ALIASES: Record<string, ProtocolId> = { lvr: 'lvr-answer-tag' };

const ROBUST: ProtocolId[] = ['mc-letter', 'mmvp-question', 'mmvp-pair', 'vstar-category', 'blink-subtask'];

/**
 * The protocols a benchmark is scored with: the ones its manifest names (first = the report's headline), plus the
 * upstream LVR rule and a robust reading, so every benchmark has both the paper's number and one that counts
 * unparseable answers instead of scoring them as a wrong letter.
 */
export function protocolsFor(manifestProtocols: string[]): ProtocolId[] {
  const named = manifestProtocols.map((p) => ALIASES[p] ?? p);
  const unknown = named.filter((p) => !isProtocolId(p));
  if (unknown.length)
    throw new Error(
      `benchmark.json names unknown protocol(s) ${unknown.join(', ')}; known: ${Object.keys(PROTOCOLS).join(', ')}`,
    );
  const chosen = [...new Set(named as ProtocolId[])];
  if (!chosen.some((p) => ROBUST.includes(p))) chosen.push('mc-letter');
  if (!chosen.includes('lvr-answer-tag')) chosen.push('lvr-answer-tag');
  return chosen;
}

interface Outcome {
  correct: boolean;
  unparseable: boolean;
  failed: boolean;
}

function entry(
  base: Pick<ScoreEntry, 'benchmark' | 'config' | 'protocol' | 'unit'>,
  group: string,
  outcomes: Outcome[],
): ScoreEntry {
  const correct = outcomes.filter((o) => o.correct).length;
  const total = outcomes.length;
  const [ciLow, ciHigh] = wilsonInterval(correct, total);
  return {
    ...base,
    group,
    correct,
    total,
    accuracy: total ? correct / total : 0,
    ciLow,
    ciHigh,
    unparseable: outcomes.filter((o) => o.unparseable).length,
    failed: outcomes.filter((o) => o.failed).length,
  };
}

function groupBy<T>(items: T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    groups.set(k, [...(groups.get(k) ?? []), item]);
  }
  return new Map([...groups.entries()].sort(([a], [b]) => a.localeCompare(b)));
}

function robust(sample: ScorableSample): Outcome {
  return {
    correct: sample.correct,
    unparseable: sample.unparseable && !sample.failed,
    failed: sample.failed,
  };
}

function upstream(sample: ScorableSample): Outcome {
  return {
    correct: sample.upstreamCorrect,
    unparseable: !sample.upstreamTagged && !sample.failed,
    failed: sample.failed,
  };
}

/** Overall plus one entry per value of `groupKey`. */
function perQuestion(
  base: Pick<ScoreEntry, 'benchmark' | 'config' | 'protocol'>,
  samples: ScorableSample[],
  outcome: (s: ScorableSample) => Outcome,
  groupKey: (s: ScorableSample) => string,
): ScoreEntry[] {
  const withUnit = { ...base, unit: 'question' as const };
  const entries = [entry(withUnit, 'overall', samples.map(outcome))];
  for (const [group, members] of groupBy(samples, groupKey))
    entries.push(entry(withUnit, group, members.map(outcome)));
  return entries;
}

/** A pair counts as right only when every question in it is right; a record without pairId is its own pair. */
function perPair(
  base: Pick<ScoreEntry, 'benchmark' | 'config' | 'protocol'>,
  samples: ScorableSample[],
): ScoreEntry[] {
  const pairs = [...groupBy(samples, (s) => s.pairId ?? `single:${s.sampleId}`).values()].map((members) => ({
    category: members[0].category,
    outcome: {
      correct: members.every((m) => m.correct),
      unparseable: members.some((m) => m.unparseable && !m.failed),
      failed: members.some((m) => m.failed),
    },
  }));
  const withUnit = { ...base, unit: 'pair' as const };
  const entries = [
    entry(
      withUnit,
      'overall',
      pairs.map((p) => p.outcome),
    ),
  ];
  for (const [group, members] of groupBy(pairs, (p) => `category:${p.category}`))
    entries.push(
      entry(
        withUnit,
        group,
        members.map((p) => p.outcome),
      ),
    );
  return entries;
}

/** Scores the samples of one benchmark under one decoding configuration with each protocol. */
export function scoreSamples(
  benchmark: string,
  config: string,
  protocols: ProtocolId[],
  samples: ScorableSample[],
): ScoreEntry[] {
  const byCategory = (s: ScorableSample): string => `category:${s.category}`;
  const bySubtask = (s: ScorableSample): string => `subtask:${s.subtask ?? s.category}`;
  return protocols.flatMap((protocol) => {
    const base = { benchmark, config, protocol };
    switch (protocol) {
      case 'lvr-answer-tag':
        return perQuestion(base, samples, upstream, byCategory);
      case 'mc-letter':
      case 'mmvp-question':
      case 'vstar-category':
        return perQuestion(base, samples, robust, byCategory);
      case 'blink-subtask':
        return perQuestion(base, samples, robust, bySubtask);
      case 'mmvp-pair':
        return perPair(base, samples);
    }
  });
}
