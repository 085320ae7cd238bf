import type { WorkloadStatus } from '@lvr/k8s';
import type { TrainingRequest } from '@lvr/contracts';
import type { RunRecord, RunStatus } from '../runs/run-record';

export type CreateOutcome = { created: true; record: RunRecord } | { created: false; record: RunRecord };

/** Where run records live: the cluster (ConfigMaps) or a local folder. The only state a trainer has. */
export interface RunStore {
  create(request: TrainingRequest, specHash: string): Promise<CreateOutcome>;
  get(runId: string): Promise<RunRecord | undefined>;
  list(): Promise<RunRecord[]>;
  saveStatus(runId: string, status: RunStatus): Promise<void>;
}

export type WorkloadListener = (runId: string, status: WorkloadStatus | undefined) => void;

/**
 * Runs the worker for a run and reports what its workload does. `start` and `stop` are idempotent: the lifecycle
 * calls them again after a restart or a redelivered message.
 */
export interface Executor {
  readonly kind: 'kubernetes' | 'local';
  readonly store: RunStore;
  /** A reason the run can never be placed (unknown priority class, ...), found before anything is created. */
  infeasible(request: TrainingRequest): Promise<string | undefined>;
  start(record: RunRecord): Promise<void>;
  stop(runId: string): Promise<void>;
  /** Begins observing workloads; `listener` is called on every change and on each periodic resync. */
  watch(listener: WorkloadListener): Promise<void>;
  workload(runId: string): WorkloadStatus | undefined;
  logs(runId: string, tailLines: number): Promise<string>;
  /** Admits queued workloads while the GPU budget allows (no-op without a budget). */
  admit(): Promise<void>;
  close(): Promise<void>;
}
