import { Logger } from '@nestjs/common';
import {
  BenchmarkScore,
  EVALUATION_API_VERSION,
  EvaluationRequest,
  EvaluationResult,
  Topics,
} from '@lvr/contracts';
import { MessagePublisher } from '@lvr/messaging';
import { EvaluatorConfig } from './config';
import { EvaluationInputError, EvaluationPlan, EvaluationRunner, RunOutcome } from './execution/runner';
import { PROTOCOLS, ScoreEntry } from './scoring/protocols';
import { EvaluationStore } from './results/evaluation-store';
import { checkRegression } from './results/regression';
import { EvaluationIndexEntry, EvaluationResults } from './results/types';
import { renderReport, wrongAnswers } from './report/render';
import { thumbnails } from './report/thumbnails';

/** Renews the Kafka session while a long evaluation holds the partition; throws once the group rebalances. */
export type KafkaHeartbeat = () => Promise<void>;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export function toBenchmarkScore(s: ScoreEntry): BenchmarkScore {
  return {
    name: s.benchmark,
    protocol: s.protocol,
    group: s.group,
    config: s.config,
    unit: s.unit,
    accuracy: s.accuracy,
    ciLow: s.ciLow,
    ciHigh: s.ciHigh,
    correct: s.correct,
    samples: s.total,
    unparseable: s.unparseable,
    failed: s.failed,
  };
}

/**
 * Owns one evaluation from request to result event. The index entry in MinIO is the evaluation's state and lease:
 * a finished evaluation is never run again (redelivery), a running one whose owner stopped renewing its lease is taken
 * over and resumes from the samples already stored.
 */
export class EvaluationService {
  private readonly logger = new Logger('Evaluation');
  private readonly inFlight = new Set<string>();

  constructor(
    private readonly config: EvaluatorConfig,
    private readonly store: EvaluationStore,
    private readonly runner: EvaluationRunner | undefined,
    private readonly publisher: MessagePublisher,
    readonly workerId: string,
  ) {}

  async handle(request: EvaluationRequest, heartbeat: KafkaHeartbeat): Promise<void> {
    const { evalId } = request;
    if (this.inFlight.has(evalId)) return;
    this.inFlight.add(evalId);
    try {
      const existing = await this.awaitLease(evalId, heartbeat);
      if (existing === 'finished') {
        this.logger.log(`evaluation ${evalId} already finished; redelivery ignored`);
        return;
      }
      await this.execute(request, existing, heartbeat);
    } finally {
      this.inFlight.delete(evalId);
    }
  }

  /** Waits while another live process holds the evaluation; returns its entry once it is ours to run. */
  private async awaitLease(
    evalId: string,
    heartbeat: KafkaHeartbeat,
  ): Promise<EvaluationIndexEntry | undefined | 'finished'> {
    for (;;) {
      const entry = await this.store.getEntry(evalId);
      if (!entry) return undefined;
      if (entry.state !== 'running') return 'finished';
      const age = Date.now() - Date.parse(entry.heartbeatAt ?? entry.updatedAt);
      if (entry.owner === this.workerId || age > this.config.leaseMs) {
        if (entry.owner !== this.workerId)
          this.logger.log(`taking over ${evalId} from ${entry.owner} (lease ${age} ms old)`);
        return entry;
      }
      await heartbeat();
      await sleep(Math.min(1000, this.config.leaseMs / 4));
    }
  }

  private async execute(
    request: EvaluationRequest,
    previous: EvaluationIndexEntry | undefined,
    heartbeat: KafkaHeartbeat,
  ): Promise<void> {
    const now = new Date().toISOString();
    const entry: EvaluationIndexEntry = {
      evalId: request.evalId,
      state: 'running',
      modelId: request.modelId,
      modelVersion: request.modelVersion,
      schedule: request.schedule,
      trigger: request.trigger ?? 'request',
      createdAt: previous?.createdAt ?? now,
      updatedAt: now,
      owner: this.workerId,
      heartbeatAt: now,
      request,
      samplesDone: previous?.samplesDone ?? 0,
    };
    await this.store.putEntry(entry);
    const abort = new AbortController();
    let samplesDone = 0;
    const renew = setInterval(
      () => {
        void (async () => {
          try {
            await heartbeat();
          } catch (error) {
            this.logger.warn(
              `lost the Kafka partition during ${request.evalId} (${(error as Error).message}); stopping`,
            );
            abort.abort(new Error('consumer group rebalanced'));
            return;
          }
          if (!(await this.stillOwner(entry))) {
            abort.abort(new Error('lease taken over'));
            return;
          }
          entry.heartbeatAt = entry.updatedAt = new Date().toISOString();
          entry.samplesDone = samplesDone;
          await this.store.putEntry(entry).catch(() => undefined);
        })();
      },
      Math.max(250, Math.floor(this.config.leaseMs / 4)),
    );
    try {
      if (!this.runner)
        throw new EvaluationInputError('the evaluator has no API configured (set LVR_EVAL_API_URL)');
      const plan = await this.runner.plan(request, abort.signal);
      entry.samplesTotal = plan.total;
      const startedAt = previous?.createdAt ?? now;
      const outcome = await this.runner.run(plan, abort.signal, () => samplesDone++);
      clearInterval(renew);
      await this.finish(entry, plan, outcome, startedAt);
    } catch (error) {
      clearInterval(renew);
      if (abort.signal.aborted) return; // the lease lapses; whoever owns the partition now resumes it
      const reason =
        error instanceof EvaluationInputError
          ? error.message
          : `evaluation failed: ${(error as Error).message}`;
      this.logger.warn(`evaluation ${request.evalId} failed: ${reason}`);
      await this.fail(entry, reason);
    }
  }

  private async finish(
    entry: EvaluationIndexEntry,
    plan: EvaluationPlan,
    outcome: RunOutcome,
    startedAt: string,
  ): Promise<void> {
    const { request } = plan;
    if (!(await this.stillOwner(entry))) return;
    const history = request.schedule
      ? (await this.store.scheduleHistory(request.schedule)).filter((p) => p.evalId !== request.evalId)
      : [];
    const regression = checkRegression(outcome.scores, history.at(-1), this.config.regressionMargin);
    const finishedAt = new Date().toISOString();
    const answered = outcome.samples.filter((s) => !s.failed);
    const results: EvaluationResults = {
      format: 'lvr-evaluation-results/v1',
      evalId: request.evalId,
      modelId: request.modelId,
      modelVersion: request.modelVersion,
      model: plan.model,
      apiBaseUrl: this.config.apiBaseUrl ?? '',
      trigger: request.trigger ?? 'request',
      schedule: request.schedule,
      startedAt,
      finishedAt,
      benchmarks: outcome.benchmarks,
      configs: plan.configs,
      protocols: Object.fromEntries(
        [...new Set(plan.benchmarks.flatMap((b) => b.protocols))].map((p) => [p, PROTOCOLS[p]]),
      ),
      scores: outcome.scores,
      samples: {
        total: outcome.samples.length,
        failed: outcome.samples.filter((s) => s.failed).length,
        unparseable: answered.filter((s) => s.unparseable).length,
        meanLatencyMs: answered.reduce((sum, s) => sum + s.latencyMs, 0) / Math.max(1, answered.length),
        meanLatentSteps: answered.reduce((sum, s) => sum + s.latentSteps, 0) / Math.max(1, answered.length),
      },
      regression,
      history,
    };
    const { evalId } = request;
    await this.store.putText(
      this.store.samplesKey(evalId),
      outcome.samples.map((s) => JSON.stringify(s)).join('\n') + '\n',
      'application/x-ndjson',
    );
    await this.store.putJson(this.store.resultsKey(evalId), results);
    const sources = new Map(plan.benchmarks.map((b) => [b.name, b.loaded.source]));
    const html = renderReport({
      results,
      samples: outcome.samples,
      thumbnails: await thumbnails(wrongAnswers(outcome.samples, this.config.reportWrongAnswers), sources),
      wrongAnswersShown: this.config.reportWrongAnswers,
    });
    await this.store.putText(this.store.reportKey(evalId), html, 'text/html; charset=utf-8');
    const headline = outcome.scores.filter((s) => s.group === 'overall');
    if (request.schedule)
      await this.store.addScheduleRun(request.schedule, {
        evalId,
        modelId: request.modelId,
        modelVersion: request.modelVersion,
        finishedAt,
        headline,
      });
    Object.assign(entry, {
      state: 'succeeded',
      updatedAt: finishedAt,
      finishedAt,
      headline,
      regressed: regression.regressed,
      samplesDone: outcome.samples.length,
    });
    await this.store.putEntry(entry);
    await this.publisher.publish<EvaluationResult>(Topics.evaluationResults, evalId, {
      apiVersion: EVALUATION_API_VERSION,
      evalId,
      status: 'Succeeded',
      modelId: request.modelId,
      modelVersion: request.modelVersion,
      schedule: request.schedule,
      scores: outcome.scores.map(toBenchmarkScore),
      reportUri: this.store.uri(this.store.reportKey(evalId)),
      resultsUri: this.store.uri(this.store.resultsKey(evalId)),
      regression,
    });
    this.logger.log(
      `evaluation ${evalId} succeeded: ${outcome.samples.length} samples${regression.regressed ? ', REGRESSED' : ''}`,
    );
  }

  /**
   * Whether this process still holds the evaluation. A process whose lease lapsed (a stall longer than the lease)
   * and was taken over must neither renew the lease over the new owner nor publish a second result.
   */
  private async stillOwner(entry: EvaluationIndexEntry): Promise<boolean> {
    const stored = await this.store.getEntry(entry.evalId).catch(() => undefined);
    if (!stored || (stored.owner === this.workerId && stored.state === 'running')) return true;
    this.logger.warn(
      `lost ${entry.evalId} to ${stored.owner} (${stored.state}); leaving it to the new owner`,
    );
    return false;
  }

  private async fail(entry: EvaluationIndexEntry, reason: string): Promise<void> {
    if (!(await this.stillOwner(entry))) return;
    const finishedAt = new Date().toISOString();
    Object.assign(entry, { state: 'failed', reason, updatedAt: finishedAt, finishedAt });
    await this.store.putEntry(entry);
    await this.publisher.publish<EvaluationResult>(Topics.evaluationResults, entry.evalId, {
      apiVersion: EVALUATION_API_VERSION,
      evalId: entry.evalId,
      status: 'Failed',
      modelId: entry.modelId,
      modelVersion: entry.modelVersion,
      schedule: entry.schedule,
      reason,
    });
  }
}
