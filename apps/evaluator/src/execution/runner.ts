import { EvaluationRequest } from '@lvr/contracts';
import {
  BenchmarkRecord,
  BenchmarkRegistry,
  LoadedBenchmark,
  loadBenchmark,
  openBenchmarkSource,
  recordImages,
} from '@lvr/data';
import { ObjectStore } from '@lvr/storage';
import { hasAnswerTag, isCorrect, parseAnswer, upstreamLvrAnswer } from '../scoring/answer-parser';
import { ProtocolId, ScoreEntry, protocolsFor, scoreSamples } from '../scoring/protocols';
import { EvaluationStore } from '../results/evaluation-store';
import { BenchmarkSummary, SampleRecord } from '../results/types';
import { DecodingConfig, expandDecoding } from './decoding';
import { Completion, ModelClient, UnknownModelError } from './model-client';
import { RetriesExhaustedError } from './retry';
import { runPool } from './pool';
import { promptContent, promptText } from './prompt';

/** Bad input found before any sample runs (invalid benchmark, unknown model, bad request shape). */
export class EvaluationInputError extends Error {}

export interface PlannedBenchmark {
  name: string;
  loaded: LoadedBenchmark;
  protocols: ProtocolId[];
}

export interface EvaluationPlan {
  request: EvaluationRequest;
  /** What the API is asked for: `<id>@<version>` when versions are addressed. */
  model: string;
  benchmarks: PlannedBenchmark[];
  configs: DecodingConfig[];
  total: number;
}

export interface RunOutcome {
  samples: SampleRecord[];
  scores: ScoreEntry[];
  benchmarks: BenchmarkSummary[];
}

function taskKey(benchmark: string, config: string, sampleId: string): string {
  return JSON.stringify([benchmark, config, sampleId]);
}

export interface RunnerOptions {
  concurrency: number;
  addressVersions: boolean;
  workerId: string;
}

/** Turns a request into a validated plan, runs its samples through the API (resumably) and scores them. */
export class EvaluationRunner {
  constructor(
    private readonly options: RunnerOptions,
    private readonly client: ModelClient,
    private readonly store: EvaluationStore,
    private readonly registry: BenchmarkRegistry,
    private readonly objectStore?: ObjectStore,
  ) {}

  modelAddress(request: Pick<EvaluationRequest, 'modelId' | 'modelVersion'>): string {
    return request.modelVersion && this.options.addressVersions
      ? `${request.modelId}@${request.modelVersion}`
      : request.modelId;
  }

  /** Every check that can fail does so here, before compute starts. */
  async plan(request: EvaluationRequest, signal?: AbortSignal): Promise<EvaluationPlan> {
    const names = request.benchmarks.map((b) => b.name);
    const repeated = names.filter((n, i) => names.indexOf(n) !== i);
    if (repeated.length) throw new EvaluationInputError(`benchmark ${repeated[0]} is listed twice`);
    const benchmarks: PlannedBenchmark[] = [];
    for (const wanted of request.benchmarks) {
      try {
        const uri = this.registry.prepare(wanted.name, wanted.uri);
        const loaded = await loadBenchmark(openBenchmarkSource(uri, this.objectStore), {
          split: wanted.split,
          limit: wanted.limit,
        });
        benchmarks.push({ name: wanted.name, loaded, protocols: protocolsFor(loaded.manifest.protocols) });
      } catch (error) {
        throw new EvaluationInputError(`benchmark ${wanted.name}: ${(error as Error).message}`);
      }
    }
    const configs = expandDecoding(request.decoding);
    const model = this.modelAddress(request);
    try {
      await this.client.checkModel(model, signal);
    } catch (error) {
      if (error instanceof UnknownModelError) throw new EvaluationInputError(error.message);
      throw error;
    }
    const total = benchmarks.reduce((sum, b) => sum + b.loaded.records.length, 0) * configs.length;
    return { request, model, benchmarks, configs, total };
  }

  /**
   * Runs every sample not yet recorded for this evaluation (so a restarted run resumes), with bounded concurrency;
   * each sample is stored the moment it completes. Then scores everything recorded.
   */
  async run(plan: EvaluationPlan, signal: AbortSignal, onSample?: () => void): Promise<RunOutcome> {
    const evalId = plan.request.evalId;
    const recorded = new Map(
      (await this.store.listSamples(evalId)).map((s) => [taskKey(s.benchmark, s.config, s.sampleId), s]),
    );
    const tasks = plan.benchmarks.flatMap((benchmark) =>
      plan.configs.flatMap((config) =>
        benchmark.loaded.records
          .filter((record) => !recorded.has(taskKey(benchmark.name, config.label, record.id)))
          .map((record) => ({ benchmark, config, record })),
      ),
    );
    // A sample's write starts the moment it completes; the lane moves on meanwhile, and all writes finish before
    // scoring. A sample whose write had not finished when the process died simply runs again on resume.
    const writes: Promise<void>[] = [];
    await runPool(
      tasks,
      this.options.concurrency,
      async ({ benchmark, config, record }) => {
        const sample = await this.runSample(plan.model, benchmark, config, record, signal);
        recorded.set(taskKey(sample.benchmark, sample.config, sample.sampleId), sample);
        writes.push(this.store.putSample(evalId, sample).then(() => onSample?.()));
      },
      signal,
    ).finally(() => Promise.allSettled(writes));
    await Promise.all(writes);
    return this.score(plan, recorded);
  }

  private async runSample(
    model: string,
    benchmark: PlannedBenchmark,
    config: DecodingConfig,
    record: BenchmarkRecord,
    signal: AbortSignal,
  ): Promise<SampleRecord> {
    const content = await promptContent(record, benchmark.loaded.source);
    let completion: Completion | undefined;
    let error: string | undefined;
    let attempts = 0;
    // A short-lived signal per request: the SDK's listeners go away with it instead of piling up on the run's signal.
    const request = new AbortController();
    const forward = (): void => request.abort(signal.reason);
    signal.addEventListener('abort', forward, { once: true });
    try {
      completion = await this.client.complete(model, content, config, request.signal);
    } catch (caught) {
      if (signal.aborted || caught instanceof EvaluationInputError) throw caught;
      if (caught instanceof UnknownModelError) throw new EvaluationInputError(caught.message);
      // Like lmms-eval: a request that never succeeded is a failed sample, counted and shown, not a crash.
      error = (caught as Error).message;
      attempts = caught instanceof RetriesExhaustedError ? caught.attempts : 1;
    } finally {
      signal.removeEventListener('abort', forward);
    }
    const sample = buildSample(
      benchmark.name,
      config.label,
      record,
      completion,
      error,
      this.options.workerId,
    );
    return completion ? sample : { ...sample, attempts };
  }

  /** Scores from the recorded samples only (what samples.jsonl holds), in plan order. */
  score(plan: EvaluationPlan, recorded: Map<string, SampleRecord>): RunOutcome {
    const samples: SampleRecord[] = [];
    const scores: ScoreEntry[] = [];
    for (const benchmark of plan.benchmarks)
      for (const config of plan.configs) {
        const group = benchmark.loaded.records
          .map((r) => recorded.get(taskKey(benchmark.name, config.label, r.id)))
          .filter((s): s is SampleRecord => s !== undefined);
        samples.push(...group);
        scores.push(...scoreSamples(benchmark.name, config.label, benchmark.protocols, group));
      }
    const benchmarks = plan.benchmarks.map((b) => ({
      name: b.name,
      uri: b.loaded.uri,
      version: b.loaded.manifest.version,
      split: b.loaded.split,
      records: b.loaded.records.length,
      protocols: b.protocols,
    }));
    return { samples, scores, benchmarks };
  }
}

export function buildSample(
  benchmark: string,
  config: string,
  record: BenchmarkRecord,
  completion: Completion | undefined,
  error: string | undefined,
  worker: string,
): SampleRecord {
  const raw = completion?.content ?? null;
  const parsed = raw === null ? { answer: null, method: 'none' as const } : parseAnswer(raw, record.options);
  const upstreamAnswer = raw === null ? '' : upstreamLvrAnswer(raw);
  return {
    benchmark,
    config,
    sampleId: record.id,
    category: record.category,
    subtask: record.subtask,
    pairId: record.pairId,
    prompt: promptText(record),
    images: recordImages(record),
    options: record.options,
    expected: record.answer,
    raw,
    parsed: parsed.answer,
    parseMethod: parsed.method,
    correct: isCorrect(parsed, record.answer, record.options),
    unparseable: parsed.answer === null,
    upstreamAnswer,
    upstreamCorrect: raw !== null && upstreamAnswer === record.answer,
    upstreamTagged: raw !== null && hasAnswerTag(raw),
    failed: completion === undefined,
    error,
    latencyMs: Math.round(completion?.latencyMs ?? 0),
    latentSteps: completion?.latentSteps ?? 0,
    promptTokens: completion?.promptTokens ?? 0,
    completionTokens: completion?.completionTokens ?? 0,
    attempts: completion?.attempts ?? 0,
    worker,
    finishedAt: new Date().toISOString(),
  };
}
