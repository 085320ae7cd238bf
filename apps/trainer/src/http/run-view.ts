import type { RunPhase } from '@lvr/contracts';
import type { WorkloadStatus } from '@lvr/k8s';
import type { RunProgress } from '../runs/lifecycle';
import {
  type BundleRef,
  type CheckpointRef,
  type RunCondition,
  type RunRecord,
  currentPhase,
} from '../runs/run-record';

/** A run as operators see it (`GET /v1/runs/{id}`). */
export interface RunView {
  object: 'training.run';
  runId: string;
  stage: string;
  phase: RunPhase;
  queued: boolean;
  createdAt: string;
  reason?: string;
  exitCode?: number;
  conditions: RunCondition[];
  progress?: RunProgress;
  checkpoints: CheckpointRef[];
  bundle?: BundleRef;
  workload?: WorkloadStatus;
  resources: { gpusPerNode: number; nodes: number; priorityClassName?: string };
}

export function runView(record: RunRecord, workload?: WorkloadStatus, progress?: RunProgress): RunView {
  const phase = currentPhase(record.status);
  return {
    object: 'training.run',
    runId: record.runId,
    stage: record.stage,
    phase,
    queued: !record.status.terminal && workload?.phase === 'Queued',
    createdAt: record.createdAt,
    ...(record.status.terminal?.reason ? { reason: record.status.terminal.reason } : {}),
    ...(record.status.terminal?.exitCode !== undefined ? { exitCode: record.status.terminal.exitCode } : {}),
    conditions: record.status.conditions,
    ...(progress ? { progress } : {}),
    checkpoints: record.status.checkpoints,
    ...(record.status.bundle ? { bundle: record.status.bundle } : {}),
    ...(workload ? { workload } : {}),
    resources: {
      gpusPerNode: record.request.resources.gpusPerNode,
      nodes: record.request.resources.nodes ?? 1,
      ...(record.request.resources.priorityClassName
        ? { priorityClassName: record.request.resources.priorityClassName }
        : {}),
    },
  };
}
