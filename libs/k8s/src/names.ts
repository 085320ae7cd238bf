import { createHash } from 'node:crypto';

/** Labels every object of a run carries, so a restarted trainer finds them with one selector. */
export const Labels = {
  runId: 'lvr.dev/run-id',
  stage: 'lvr.dev/stage',
  component: 'app.kubernetes.io/component',
  managedBy: 'app.kubernetes.io/managed-by',
} as const;

export const MANAGED_BY = 'lvr-trainer';
/** The run record (ConfigMap) and the training workload (Job, Service, pods). */
export const Components = { record: 'run-record', training: 'training' } as const;

export const MANAGED_SELECTOR = `${Labels.managedBy}=${MANAGED_BY}`;

/**
 * Longest object name that still leaves room for an Indexed Job's pod hostname `<job>-<index>` (a 63-character DNS
 * label, indexes up to 127).
 */
const NAME_MAX = 58;

/**
 * The one name of every Kubernetes object of a run (ConfigMap, Job, Service): derived from the run id alone, so a
 * redelivered request can never create a second Job. Long ids keep a readable prefix plus a hash of the whole id.
 */
export function runObjectName(runId: string): string {
  const full = `run-${runId}`;
  if (full.length <= NAME_MAX) return full;
  const hash = createHash('sha256').update(runId).digest('hex').slice(0, 8);
  const prefix = full.slice(0, NAME_MAX - hash.length - 1).replace(/-+$/, '');
  return `${prefix}-${hash}`;
}

export function runLabels(runId: string, stage: string, component: string): Record<string, string> {
  return {
    [Labels.runId]: runId,
    [Labels.stage]: stage,
    [Labels.component]: component,
    [Labels.managedBy]: MANAGED_BY,
  };
}
