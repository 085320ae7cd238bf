import type * as k8s from '@kubernetes/client-node';
import { EXIT_INVALID, TRAINER_CONTAINER } from './run-objects';

/** Where a training workload stands, read from its Job and pods (never from what the worker says). */
export type WorkloadPhase = 'Queued' | 'Pending' | 'Scheduled' | 'Running' | 'Succeeded' | 'Failed';

/** Why a pod of the run ended without finishing the run. */
export interface PodFailure {
  pod: string;
  reason: string;
  exitCode?: number;
  at?: string;
}

export interface WorkloadStatus {
  phase: WorkloadPhase;
  /** Pod failures the run survived (each one is a retry), oldest first. */
  retries: PodFailure[];
  reason?: string;
  message?: string;
  exitCode?: number;
  /** Set while a pod of the current attempt cannot be placed on any node: since when and the scheduler's words. */
  unschedulable?: { since: string; message: string };
}

function trueCondition<T extends { type: string; status: string }>(
  conditions: T[] | undefined,
  type: string,
) {
  return conditions?.find((c) => c.type === type && c.status === 'True');
}

function trainerExitCode(pod: k8s.V1Pod): number | undefined {
  const status = pod.status?.containerStatuses?.find((c) => c.name === TRAINER_CONTAINER);
  return status?.state?.terminated?.exitCode ?? status?.lastState?.terminated?.exitCode;
}

const DISRUPTION_REASONS: Record<string, string> = {
  PreemptionByScheduler: 'preempted',
  PreemptionByKubeScheduler: 'preempted',
  TerminationByKubelet: 'evicted',
  EvictionByEvictionAPI: 'evicted',
  DeletionByTaintManager: 'node lost',
  DeletionByPodGC: 'node lost',
};

const DISRUPTION_REASON_SET = new Set([
  ...Object.values(DISRUPTION_REASONS),
  'disrupted',
  'evicted',
  'node lost',
]);

/** The retry reason of a failed pod: a disruption (evicted, preempted, node lost) or the worker's exit code. */
export function podFailure(pod: k8s.V1Pod): PodFailure {
  const disruption = trueCondition(pod.status?.conditions, 'DisruptionTarget');
  const exitCode = trainerExitCode(pod);
  const at =
    pod.status?.containerStatuses?.find((c) => c.name === TRAINER_CONTAINER)?.state?.terminated?.finishedAt ??
    disruption?.lastTransitionTime;
  const base = { pod: pod.metadata?.name ?? '', exitCode, at: at ? new Date(at).toISOString() : undefined };
  if (disruption) return { ...base, reason: DISRUPTION_REASONS[disruption.reason ?? ''] ?? 'disrupted' };
  if (pod.status?.reason === 'Evicted') return { ...base, reason: 'evicted' };
  if (pod.status?.reason === 'NodeLost') return { ...base, reason: 'node lost' };
  if (exitCode === 75) return { ...base, reason: 'exit 75 (stopped after saving a checkpoint)' };
  if (exitCode !== undefined) return { ...base, reason: `exit ${exitCode}` };
  return { ...base, reason: pod.status?.reason ?? 'pod failed' };
}

function byCreation(a: k8s.V1Pod, b: k8s.V1Pod): number {
  const ta = new Date(a.metadata?.creationTimestamp ?? 0).getTime();
  const tb = new Date(b.metadata?.creationTimestamp ?? 0).getTime();
  return ta - tb || (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? '');
}

/**
 * Derives the workload's phase from its Job and pods. A run is Scheduled when every pod of the current attempt is
 * bound to a node and Running when all of them run; failed pods before the end are retries; the Job's own
 * Complete/Failed condition decides the end.
 */
export function workloadStatus(
  job: k8s.V1Job,
  pods: readonly k8s.V1Pod[],
  expectedPods: number,
): WorkloadStatus {
  const sorted = [...pods].sort(byCreation);
  const failures = sorted.filter((p) => p.status?.phase === 'Failed').map(podFailure);
  const { retries, fatal } = splitFailures(failures, job.spec?.backoffLimit ?? 6);
  const complete = trueCondition(job.status?.conditions, 'Complete');
  if (complete) return { phase: 'Succeeded', retries, reason: complete.reason };
  // FailureTarget comes first (the Job controller decided), Failed once the pods are gone; both mean the end.
  const failed =
    trueCondition(job.status?.conditions, 'Failed') ?? trueCondition(job.status?.conditions, 'FailureTarget');
  if (failed) {
    const exitCode = (fatal ?? failures.at(-1))?.exitCode;
    return {
      phase: 'Failed',
      retries,
      reason: failedReason(failed.reason, exitCode),
      message: failed.message,
      exitCode,
    };
  }
  if (job.spec?.suspend) return { phase: 'Queued', retries };
  const current = sorted.filter((p) => p.status?.phase !== 'Failed' && p.status?.phase !== 'Succeeded');
  const succeeded = sorted.filter((p) => p.status?.phase === 'Succeeded').length;
  const waitingFor = Math.max(0, expectedPods - succeeded);
  const unschedulable = current
    .map((p) => p.status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False'))
    .find((c) => c?.reason === 'Unschedulable');
  const status: WorkloadStatus = { phase: 'Pending', retries };
  if (unschedulable)
    status.unschedulable = {
      since: new Date(unschedulable.lastTransitionTime ?? Date.now()).toISOString(),
      message: unschedulable.message ?? 'no node fits the pod',
    };
  if (current.length < waitingFor || waitingFor === 0) return status;
  const bound = current.filter(
    (p) => p.spec?.nodeName || trueCondition(p.status?.conditions, 'PodScheduled'),
  );
  if (bound.length < waitingFor) return status;
  const running = current.filter((p) => p.status?.phase === 'Running');
  return { ...status, phase: running.length >= waitingFor ? 'Running' : 'Scheduled' };
}

/**
 * Which pod failures the Job survives, by the Job's own podFailurePolicy: disruptions are ignored (always a retry),
 * exit 78 fails the Job, any other failure counts against `backoffLimit`. A fatal failure is never reported as a
 * retry, even in the moment before the Job controller marks the Job failed.
 */
function splitFailures(
  failures: PodFailure[],
  backoffLimit: number,
): { retries: PodFailure[]; fatal?: PodFailure } {
  const retries: PodFailure[] = [];
  let counted = 0;
  for (const failure of failures) {
    const disruption = DISRUPTION_REASON_SET.has(failure.reason);
    if (!disruption && failure.exitCode === EXIT_INVALID) return { retries, fatal: failure };
    if (!disruption && ++counted > backoffLimit) return { retries, fatal: failure };
    retries.push(failure);
  }
  return { retries };
}

function failedReason(conditionReason: string | undefined, exitCode: number | undefined): string {
  if (conditionReason === 'PodFailurePolicy' && exitCode === EXIT_INVALID)
    return `invalid run spec, model or data (exit ${EXIT_INVALID}; not retried)`;
  if (conditionReason === 'BackoffLimitExceeded')
    return `retries exhausted (backoffLimit)${exitCode !== undefined ? `; last exit code ${exitCode}` : ''}`;
  if (conditionReason === 'DeadlineExceeded') return 'activeDeadlineSeconds exceeded';
  return conditionReason ?? 'Job failed';
}
