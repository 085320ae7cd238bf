import { Logger } from '@nestjs/common';
import {
  type RunPhase,
  TRAINING_API_VERSION,
  type TrainingEvent,
  type TrainingRequest,
} from '@lvr/contracts';
import type { WorkloadStatus } from '@lvr/k8s';
import type { MessagePublisher } from '@lvr/messaging';
import type { Executor } from '../executors/executor';
import { type RunRecord, type RunStatus, type TerminalPhase, transitionKey, specHash } from './run-record';

/** Live numbers of a run that are not worth a write to the cluster on every step. */
export interface RunProgress {
  step?: number;
  totalSteps?: number;
  loss?: number;
  etaSeconds?: number;
  updatedAt: string;
  data: Record<string, unknown>;
}

export type SubmitOutcome = 'created' | 'duplicate' | 'conflict';

const LOG_TAIL_LINES = 20;

/**
 * The run lifecycle, one place for every rule: a request becomes a run record and a workload; workload changes
 * become transitions (Accepted → Scheduled → Running → Retrying… → Succeeded | Failed | Cancelled) that are
 * published once each, in order per run, with deterministic message ids; worker events are merged but never decide
 * the end. Everything it knows is in the run record (cluster or local folder) or can be observed again.
 */
export class RunLifecycle {
  private readonly logger = new Logger(RunLifecycle.name);
  private readonly queues = new Map<string, Promise<void>>();
  private readonly progress = new Map<string, RunProgress>();
  private readonly workerReasons = new Map<string, string>();

  constructor(
    private readonly executor: Executor,
    private readonly publisher: MessagePublisher,
    private readonly options: { unschedulableGraceMs: number; eventsTopic: string },
  ) {}

  /** Runs `task` after every earlier task of the same run, so a run's events leave in order. */
  private serial<T>(runId: string, task: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(runId) ?? Promise.resolve();
    const next = previous.then(task, task);
    const settled = next.then(
      () => undefined,
      () => undefined,
    );
    this.queues.set(runId, settled);
    void settled.then(() => {
      if (this.queues.get(runId) === settled) this.queues.delete(runId);
    });
    return next;
  }

  /** A valid request: create the run once (idempotent by run id), report Accepted, start the workload. */
  submit(request: TrainingRequest): Promise<SubmitOutcome> {
    return this.serial(request.runId, async () => {
      const hash = specHash(request);
      const existing = await this.executor.store.get(request.runId);
      if (existing && existing.specHash !== hash) {
        await this.rejectConflict(request);
        return 'conflict';
      }
      let record = existing;
      let outcome: SubmitOutcome = 'duplicate';
      if (!record) {
        const created = await this.executor.store.create(request, hash);
        record = created.record;
        if (!created.created && record.specHash !== hash) {
          await this.rejectConflict(request);
          return 'conflict';
        }
        outcome = created.created ? 'created' : 'duplicate';
      }
      await this.report(record, 'Accepted', undefined, undefined, {
        stage: request.stage,
        requestId: request.id,
      });
      if (record.status.terminal) return outcome;
      const infeasible = await this.executor.infeasible(request);
      if (infeasible) {
        await this.finish(record, 'Failed', infeasible);
        return outcome;
      }
      await this.executor.start(record);
      await this.executor.admit();
      return outcome;
    });
  }

  private async rejectConflict(request: TrainingRequest): Promise<void> {
    const reason = `run id ${request.runId} already exists with a different spec; use a new run id`;
    this.logger.warn(reason);
    await this.publisher.publish<TrainingEvent>(this.options.eventsTopic, request.runId, {
      apiVersion: TRAINING_API_VERSION,
      runId: request.runId,
      type: 'Rejected',
      reason,
      data: { requestId: request.id },
    });
  }

  /** Cancels a run: the terminal state is written first, then the workload is deleted (checkpoints stay). */
  cancel(runId: string, reason = 'cancelled by operator'): Promise<RunRecord | undefined> {
    return this.serial(runId, async () => {
      const record = await this.executor.store.get(runId);
      if (!record) return undefined;
      if (!record.status.terminal) await this.finish(record, 'Cancelled', reason);
      await this.executor.stop(runId);
      await this.executor.admit();
      return record;
    });
  }

  /** A workload changed (or a resync): publish the transitions it implies that were not published yet. */
  observe(runId: string, workload: WorkloadStatus | undefined): Promise<void> {
    return this.serial(runId, async () => {
      const record = await this.executor.store.get(runId);
      if (!record) return;
      if (record.status.terminal) {
        if (workload && workload.phase !== 'Succeeded' && workload.phase !== 'Failed')
          await this.executor.stop(runId);
        return;
      }
      if (!workload) {
        // The record exists but the workload does not (a crash between the two writes): create it now.
        await this.executor.start(record);
        return;
      }
      const retries = workload.retries.length;
      for (const [index, failure] of workload.retries.entries()) {
        await this.report(record, 'Retrying', index + 1, failure.reason, {
          attempt: index + 1,
          pod: failure.pod,
          ...(failure.exitCode !== undefined ? { exitCode: failure.exitCode } : {}),
        });
      }
      switch (workload.phase) {
        case 'Queued':
          await this.note(record, 'Queued', 'waiting for GPU budget');
          return;
        case 'Pending':
          if (workload.unschedulable) {
            const waited = Date.now() - new Date(workload.unschedulable.since).getTime();
            if (waited >= this.options.unschedulableGraceMs) {
              await this.finish(record, 'Failed', `Unschedulable: ${workload.unschedulable.message}`);
              await this.executor.stop(runId);
              await this.executor.admit();
            }
          }
          return;
        case 'Scheduled':
          await this.report(record, 'Scheduled', retries);
          return;
        case 'Running':
          await this.report(record, 'Scheduled', retries);
          await this.report(record, 'Running', retries);
          return;
        case 'Succeeded':
          await this.report(record, 'Scheduled', retries);
          await this.report(record, 'Running', retries);
          await this.finish(record, 'Succeeded', workload.reason);
          await this.executor.admit();
          return;
        case 'Failed':
          await this.finish(record, 'Failed', workload.reason, workload.exitCode, workload.message);
          await this.executor.admit();
          return;
      }
    });
  }

  /**
   * An event the worker published on its own topic. Progress and CheckpointSaved are forwarded (same message id, so
   * a redelivery stays a duplicate); the worker's own Succeeded/Failed only add detail to what the workload decides.
   */
  mergeWorkerEvent(event: TrainingEvent): Promise<void> {
    return this.serial(event.runId, async () => {
      const record = await this.executor.store.get(event.runId);
      if (!record) return;
      const data = event.data ?? {};
      switch (event.type) {
        case 'Progress':
          this.progress.set(event.runId, {
            step: numberOf(data.step),
            totalSteps: numberOf(data.totalSteps),
            loss: numberOf(data.loss),
            etaSeconds: numberOf(data.etaSeconds),
            updatedAt: event.timestamp,
            data,
          });
          if (!record.status.terminal) await this.forward(event);
          return;
        case 'CheckpointSaved': {
          const uri = typeof data.uri === 'string' ? data.uri : undefined;
          const step = numberOf(data.step);
          if (uri && step !== undefined && !record.status.checkpoints.some((c) => c.uri === uri)) {
            record.status.checkpoints.push({
              step,
              uri,
              trigger: typeof data.trigger === 'string' ? data.trigger : undefined,
              at: event.timestamp,
            });
            await this.executor.store.saveStatus(record.runId, record.status);
          }
          await this.forward(event);
          return;
        }
        case 'Succeeded':
          if (typeof data.bundleUri === 'string') {
            record.status.bundle = {
              uri: data.bundleUri,
              modelId: typeof data.modelId === 'string' ? data.modelId : undefined,
              version: typeof data.version === 'string' ? data.version : undefined,
            };
            await this.executor.store.saveStatus(record.runId, record.status);
          }
          return;
        case 'Failed':
          if (event.reason) this.workerReasons.set(event.runId, event.reason);
          return;
        default:
          return;
      }
    });
  }

  progressOf(runId: string): RunProgress | undefined {
    return this.progress.get(runId);
  }

  private async forward(event: TrainingEvent): Promise<void> {
    await this.publisher.publish<TrainingEvent>(this.options.eventsTopic, event.runId, {
      apiVersion: TRAINING_API_VERSION,
      id: event.id,
      timestamp: event.timestamp,
      runId: event.runId,
      type: event.type,
      ...(event.reason ? { reason: event.reason } : {}),
      ...(event.data ? { data: event.data } : {}),
    });
  }

  /** Publishes a transition unless it was published before, then records it with the run. */
  private async report(
    record: RunRecord,
    phase: RunPhase,
    attempt?: number,
    reason?: string,
    data?: Record<string, unknown>,
  ): Promise<boolean> {
    const key = transitionKey(phase, attempt);
    if (record.status.reported.includes(key)) return false;
    const time = new Date().toISOString();
    await this.publisher.publish<TrainingEvent>(this.options.eventsTopic, record.runId, {
      apiVersion: TRAINING_API_VERSION,
      id: `${record.runId}.${key}`,
      timestamp: time,
      runId: record.runId,
      type: phase,
      ...(reason ? { reason } : {}),
      data: { stage: record.stage, ...(attempt !== undefined ? { attempt } : {}), ...data },
    });
    const status: RunStatus = record.status;
    status.reported.push(key);
    status.conditions.push({ type: phase, reason, time, ...(attempt !== undefined ? { attempt } : {}) });
    await this.executor.store.saveStatus(record.runId, status);
    return true;
  }

  /** A condition operators see in the run's status that is not an event (queued for GPUs). */
  private async note(record: RunRecord, type: 'Queued', reason: string): Promise<void> {
    if (record.status.conditions.some((c) => c.type === type)) return;
    record.status.conditions.push({ type, reason, time: new Date().toISOString() });
    await this.executor.store.saveStatus(record.runId, record.status);
  }

  /** Publishes the run's one terminal event and records it; nothing is published for the run after that. */
  private async finish(
    record: RunRecord,
    phase: TerminalPhase,
    reason?: string,
    exitCode?: number,
    message?: string,
  ): Promise<void> {
    if (record.status.terminal) return;
    const data: Record<string, unknown> = {};
    if (exitCode !== undefined) data.exitCode = exitCode;
    if (message) data.message = message;
    if (phase === 'Failed') {
      const workerReason = this.workerReasons.get(record.runId);
      if (workerReason) data.workerReason = workerReason;
      const logs = await this.executor.logs(record.runId, LOG_TAIL_LINES).catch(() => '');
      if (logs) data.lastLogLines = logs.split('\n').slice(-LOG_TAIL_LINES);
    }
    if (phase === 'Succeeded' && record.status.bundle) {
      data.bundleUri = record.status.bundle.uri;
      if (record.status.bundle.modelId) data.modelId = record.status.bundle.modelId;
      if (record.status.bundle.version) data.version = record.status.bundle.version;
    }
    if (record.status.checkpoints.length) data.lastCheckpoint = record.status.checkpoints.at(-1)!.uri;
    const fullReason =
      phase === 'Failed' && this.workerReasons.get(record.runId)
        ? `${reason ?? 'failed'}: ${this.workerReasons.get(record.runId)}`
        : reason;
    await this.report(record, phase, undefined, fullReason?.slice(0, 4096), data);
    record.status.terminal = { phase, reason: fullReason, exitCode, at: new Date().toISOString() };
    await this.executor.store.saveStatus(record.runId, record.status);
    this.progress.delete(record.runId);
    this.workerReasons.delete(record.runId);
  }
}

function numberOf(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}
