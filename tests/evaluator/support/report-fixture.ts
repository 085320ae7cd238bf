import sharp from 'sharp';
import { BenchmarkRecord } from '@lvr/data';
import { buildSample } from '../../../apps/evaluator/src/execution/runner';
import { DecodingConfig } from '../../../apps/evaluator/src/execution/decoding';
import { EvaluationResults, SampleRecord, VersionPoint } from '../../../apps/evaluator/src/results/types';
import { checkRegression } from '../../../apps/evaluator/src/results/regression';
import { PROTOCOLS, ScoreEntry, scoreSamples } from '../../../apps/evaluator/src/scoring/protocols';
import { ReportInput, thumbnailKey, wrongAnswers } from '../../../apps/evaluator/src/report/render';

/** A deterministic pseudo-random stream so the report fixture is the same on every run. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

const LETTERS = ['A', 'B', 'C', 'D'];

function records(benchmark: string, categories: string[], count: number): BenchmarkRecord[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `${benchmark}-${i}`,
    question: `Which colour is the marked object in picture ${i}?`,
    options: LETTERS.map((letter, j) => ({ letter, text: ['red', 'green', 'blue', 'yellow'][j] })),
    answer: LETTERS[i % 4],
    image: `images/${i}.png`,
    category: categories[i % categories.length],
    pairId: `p${Math.floor(i / 2)}`,
  }));
}

/** Raw answers in the shapes models produce: tagged, bare letters, option text, and junk (unparseable). */
function answerFor(record: BenchmarkRecord, rightProbability: number, random: () => number): string {
  const roll = random();
  if (roll > 0.93) return 'I cannot tell from this picture';
  const letter = random() < rightProbability ? record.answer : LETTERS[Math.floor(random() * 4)];
  const style = Math.floor(random() * 3);
  if (style === 0) return `<answer>${letter}</answer>`;
  if (style === 1) return `${letter}.`;
  return record.options.find((o) => o.letter === letter)!.text;
}

export async function reportFixture(): Promise<ReportInput> {
  const random = prng(7);
  const benchmarks = [
    {
      name: 'synthetic-grounding',
      records: records('sg', ['colour', 'shape', 'count', 'glyph'], 48),
      protocols: ['mc-letter', 'lvr-answer-tag'] as const,
    },
    {
      name: 'mmvp',
      records: records('mmvp', ['orientation', 'colour', 'state'], 30),
      protocols: ['mmvp-pair', 'mmvp-question', 'lvr-answer-tag'] as const,
    },
  ];
  const configs: DecodingConfig[] = [0, 4, 8, 16].map((steps) => ({
    label: `steps=${steps}`,
    strategy: steps === 0 ? 'none' : 'steps',
    steps,
    temperature: 0,
    maxTokens: 64,
  }));
  const samples: SampleRecord[] = [];
  const scores: ScoreEntry[] = [];
  for (const b of benchmarks)
    for (const config of configs) {
      const right = 0.45 + 0.02 * (config.steps ?? 0);
      const group = b.records.map((r) => {
        const raw = answerFor(r, right, random);
        return buildSample(
          b.name,
          config.label,
          r,
          {
            content: raw,
            latentSteps: config.steps ?? 0,
            promptTokens: 90,
            completionTokens: 6,
            attempts: 1,
            latencyMs: 40 + random() * 30,
          },
          undefined,
          'fixture',
        );
      });
      samples.push(...group);
      scores.push(...scoreSamples(b.name, config.label, [...b.protocols], group));
    }
  const overall = scores.filter((s) => s.group === 'overall');
  const history: VersionPoint[] = ['1', '2', '3'].map((version, i) => ({
    evalId: `sch-nightly-${i}`,
    modelId: 'lvr-demo',
    modelVersion: version,
    finishedAt: `2026-11-2${i + 1}T02:00:00.000Z`,
    headline: overall.map((s) => {
      const shift = 0.3 - 0.05 * i;
      const clamp = (x: number): number => Math.max(0, Math.min(1, x + shift));
      return { ...s, accuracy: clamp(s.accuracy), ciLow: clamp(s.ciLow), ciHigh: clamp(s.ciHigh) };
    }),
  }));
  const results: EvaluationResults = {
    format: 'lvr-evaluation-results/v1',
    evalId: 'sch-nightly-4',
    modelId: 'lvr-demo',
    modelVersion: '4',
    model: 'lvr-demo@4',
    apiBaseUrl: 'http://api:8080/v1',
    trigger: 'schedule',
    schedule: 'nightly',
    startedAt: '2026-11-24T02:00:00.000Z',
    finishedAt: '2026-11-24T02:03:10.000Z',
    benchmarks: benchmarks.map((b) => ({
      name: b.name,
      uri: `s3://benchmarks/${b.name}/`,
      version: '1',
      split: 'test',
      records: b.records.length,
      protocols: [...b.protocols],
    })),
    configs,
    protocols: Object.fromEntries(Object.entries(PROTOCOLS)),
    scores,
    samples: {
      total: samples.length,
      failed: 0,
      unparseable: samples.filter((s) => s.unparseable).length,
      meanLatencyMs: 55,
      meanLatentSteps: 7,
    },
    regression: checkRegression(scores, history.at(-1), 0.02),
    history,
  };
  const thumbnails = new Map<string, string>();
  for (const s of wrongAnswers(samples, 12))
    for (const image of s.images) {
      const n = Number(/(\d+)/.exec(image)![1]);
      const png = await sharp({
        create: {
          width: 64,
          height: 64,
          channels: 3,
          background: { r: (n * 53) % 256, g: (n * 97) % 256, b: 160 },
        },
      })
        .png()
        .toBuffer();
      thumbnails.set(thumbnailKey(s.benchmark, image), `data:image/png;base64,${png.toString('base64')}`);
    }
  return { results, samples, thumbnails, wrongAnswersShown: 12 };
}
