import type { BenchmarkOption } from '@lvr/data';
import type { EvaluationRequest, RegressionCheck } from '@lvr/contracts';
import type { ParseMethod } from '../scoring/answer-parser';
import type { ScoreEntry } from '../scoring/protocols';
import type { DecodingConfig } from '../execution/decoding';

/** One line of samples.jsonl: everything needed to rescore or inspect an answer without the model. */
export interface SampleRecord {
  benchmark: string;
  config: string;
  sampleId: string;
  category: string;
  subtask?: string;
  pairId?: string;
  prompt: string;
  images: string[];
  options: BenchmarkOption[];
  expected: string;
  /** Null when the API never answered. */
  raw: string | null;
  parsed: string | null;
  parseMethod: ParseMethod;
  correct: boolean;
  unparseable: boolean;
  upstreamAnswer: string;
  upstreamCorrect: boolean;
  upstreamTagged: boolean;
  failed: boolean;
  error?: string;
  latencyMs: number;
  latentSteps: number;
  promptTokens: number;
  completionTokens: number;
  attempts: number;
  /** The evaluator process that produced it (resume tests and audits read it). */
  worker: string;
  finishedAt: string;
}

export type EvaluationState = 'running' | 'succeeded' | 'failed';

/** `index/<evalId>.json`: the evaluation's status, lease and headline, small enough to list. */
export interface EvaluationIndexEntry {
  evalId: string;
  state: EvaluationState;
  modelId: string;
  modelVersion?: string;
  schedule?: string;
  trigger: string;
  createdAt: string;
  updatedAt: string;
  finishedAt?: string;
  /** Process holding the lease while running. */
  owner?: string;
  heartbeatAt?: string;
  reason?: string;
  request: EvaluationRequest;
  /** Overall scores, one per benchmark × protocol × config. */
  headline?: ScoreEntry[];
  regressed?: boolean;
  samplesDone?: number;
  samplesTotal?: number;
}

export interface BenchmarkSummary {
  name: string;
  uri: string;
  version: string;
  split: string;
  records: number;
  protocols: string[];
}

export interface VersionPoint {
  evalId: string;
  modelId: string;
  modelVersion?: string;
  finishedAt: string;
  headline: ScoreEntry[];
}

/** `results.json`. */
export interface EvaluationResults {
  format: 'lvr-evaluation-results/v1';
  evalId: string;
  modelId: string;
  modelVersion?: string;
  model: string;
  apiBaseUrl: string;
  trigger: string;
  schedule?: string;
  startedAt: string;
  finishedAt: string;
  benchmarks: BenchmarkSummary[];
  configs: DecodingConfig[];
  protocols: Record<string, string>;
  scores: ScoreEntry[];
  samples: {
    total: number;
    failed: number;
    unparseable: number;
    meanLatencyMs: number;
    meanLatentSteps: number;
  };
  regression: RegressionCheck;
  /** Earlier evaluations of the same schedule, oldest first (for the versions chart). */
  history: VersionPoint[];
}
