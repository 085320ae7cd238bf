import { createHash } from 'node:crypto';
import type { RunPhase, TrainingRequest, TrainingStage } from '@lvr/contracts';

export const TERMINAL_PHASES = ['Succeeded', 'Failed', 'Cancelled'] as const;
export type TerminalPhase = (typeof TERMINAL_PHASES)[number];

/** One published transition (or a Queued/Unschedulable note) with why and when. */
export interface RunCondition {
  type: RunPhase | 'Queued';
  reason?: string;
  message?: string;
  time: string;
  attempt?: number;
}

export interface CheckpointRef {
  step: number;
  uri: string;
  trigger?: string;
  at: string;
}

export interface BundleRef {
  uri: string;
  modelId?: string;
  version?: string;
}

/** What the trainer has reported about a run; kept with the run's record so a restart never reports twice. */
export interface RunStatus {
  /** Keys of the transitions already published on lvr.training.events (see `transitionKey`). */
  reported: string[];
  conditions: RunCondition[];
  terminal?: { phase: TerminalPhase; reason?: string; exitCode?: number; at: string };
  checkpoints: CheckpointRef[];
  bundle?: BundleRef;
}

export interface RunRecord {
  runId: string;
  stage: TrainingStage;
  request: TrainingRequest;
  specHash: string;
  createdAt: string;
  status: RunStatus;
}

export function emptyStatus(): RunStatus {
  return { reported: [], conditions: [], checkpoints: [] };
}

/** The phase shown to operators: the terminal one, else the last published transition. */
export function currentPhase(status: RunStatus): RunPhase {
  if (status.terminal) return status.terminal.phase;
  const last = [...status.conditions].reverse().find((c) => c.type !== 'Queued');
  return (last?.type as RunPhase | undefined) ?? 'Accepted';
}

/**
 * Identity of a transition: the phase plus the attempt it belongs to (a run is Scheduled and Running again after
 * each retry). It is also the last part of the event's message id, so a re-publish after a crash is a redelivery.
 */
export function transitionKey(phase: RunPhase, attempt?: number): string {
  return attempt === undefined ? phase : `${phase}#${attempt}`;
}

/**
 * Hash of what the run does: the request without its envelope (message id and timestamp differ between a request
 * and its redelivery or resubmission; the run they describe does not).
 */
export function specHash(request: TrainingRequest): string {
  const { id: _id, timestamp: _timestamp, ...spec } = request as TrainingRequest & Record<string, unknown>;
  return createHash('sha256').update(canonicalJson(spec)).digest('hex');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
