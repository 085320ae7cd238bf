// Test helpers for the stack's Kubernetes cluster: clients from KUBECONFIG, throwaway namespaces and bounded watches.
import * as k8s from '@kubernetes/client-node';
import { requireEnv, uniqueName } from '../support/env';

/** Annotations read by the kwok stages in infra/k8s/kwok-stages.yaml. */
export const OUTCOME = 'kwok.lvr.dev/outcome';
export const EXIT_CODE = 'kwok.lvr.dev/exit-code';
export const GPU = 'nvidia.com/gpu';
export const GPU_TOLERATION: k8s.V1Toleration = { key: GPU, operator: 'Exists', effect: 'NoSchedule' };
const WAIT_MS = 90_000;

export interface Cluster {
  kc: k8s.KubeConfig;
  core: k8s.CoreV1Api;
  batch: k8s.BatchV1Api;
}

export function connect(): Cluster {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(requireEnv('KUBECONFIG'));
  return { kc, core: kc.makeApiClient(k8s.CoreV1Api), batch: kc.makeApiClient(k8s.BatchV1Api) };
}

/** A fresh namespace, returned once its default service account exists (pods are rejected before that). */
export async function createNamespace(cluster: Cluster, prefix: string): Promise<string> {
  const name = uniqueName(prefix);
  const defaultAccount = watchUntil<k8s.V1ServiceAccount>(
    cluster,
    `/api/v1/namespaces/${name}/serviceaccounts`,
    {},
    (_type, account) => account.metadata?.name === 'default',
    `default service account in ${name}`,
  );
  await cluster.core.createNamespace({ body: { metadata: { name, labels: { 'lvr.dev/test': 'k8s' } } } });
  await defaultAccount.done;
  return name;
}

export async function deleteNamespace(cluster: Cluster, name: string): Promise<void> {
  await cluster.core.deleteNamespace({ name }).catch((error: unknown) => {
    if ((error as { code?: number }).code !== 404) throw error;
  });
}

export interface WatchEvent<T> {
  type: string;
  object: T;
}

export interface Watching<T> {
  /** Every event seen so far, in order. */
  events: WatchEvent<T>[];
  /** Resolves with the events once `until` holds for one of them; rejects after the bounded wait. */
  done: Promise<WatchEvent<T>[]>;
  stop(): void;
}

/**
 * Watches `path` (started before the caller creates anything, so no transition is missed) until `until` returns
 * true. On timeout the error lists every event seen, which is what one needs to debug a stuck transition.
 */
export function watchUntil<T>(
  cluster: Cluster,
  path: string,
  query: Record<string, string>,
  until: (type: string, object: T, events: WatchEvent<T>[]) => boolean,
  what: string,
  timeoutMs = WAIT_MS,
): Watching<T> & { started: Promise<void> } {
  const events: WatchEvent<T>[] = [];
  let controller: AbortController | undefined;
  let settled = false;
  let resolveDone!: (events: WatchEvent<T>[]) => void;
  let rejectDone!: (error: Error) => void;
  const done = new Promise<WatchEvent<T>[]>((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });
  const finish = (error?: Error) => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    controller?.abort();
    if (error) rejectDone(error);
    else resolveDone(events);
  };
  const timer = setTimeout(
    () =>
      finish(
        new Error(
          `timed out after ${timeoutMs / 1000}s waiting for ${what}; events seen:\n${describe(events)}`,
        ),
      ),
    timeoutMs,
  );
  const started = new k8s.Watch(cluster.kc)
    .watch(
      path,
      query,
      (type: string, object: T) => {
        if (settled) return;
        if (type === 'ERROR') {
          finish(new Error(`watch for ${what} got an error event: ${JSON.stringify(object)}`));
          return;
        }
        events.push({ type, object });
        try {
          if (until(type, object, events)) finish();
        } catch (error) {
          finish(error as Error);
        }
      },
      (error: unknown) => {
        // The server closes watches now and then; an unfinished wait must not pass silently.
        if (!settled)
          finish(new Error(`watch for ${what} ended early: ${String(error ?? 'closed by server')}`));
      },
    )
    .then((c) => {
      controller = c;
      if (settled) c.abort();
    });
  started.catch((error: Error) => finish(error));
  return { events, done, started, stop: () => finish() };
}

/** Starts a watch and waits until the server has accepted it. */
export async function startWatch<T>(...args: Parameters<typeof watchUntil<T>>): Promise<Watching<T>> {
  const watching = watchUntil<T>(...args);
  await watching.started;
  return watching;
}

function describe<T>(events: WatchEvent<T>[]): string {
  return events
    .map(({ type, object }) => {
      const o = object as { metadata?: { name?: string }; status?: unknown };
      return `  ${type} ${o.metadata?.name}: ${JSON.stringify(o.status)}`;
    })
    .join('\n');
}

export function condition(
  object: { status?: { conditions?: Array<{ type: string; status: string; reason?: string }> } },
  type: string,
) {
  return object.status?.conditions?.find((c) => c.type === type && c.status === 'True');
}

/** Phases in the order the watch saw them, consecutive repeats collapsed. */
export function phaseHistory(events: WatchEvent<k8s.V1Pod>[], podName?: string): string[] {
  const phases: string[] = [];
  for (const { object } of events) {
    if (podName && object.metadata?.name !== podName) continue;
    const phase = object.status?.phase ?? 'Pending';
    if (phases.at(-1) !== phase) phases.push(phase);
  }
  return phases;
}

/** A Job whose pods the kwok stages drive; `annotations` pick the simulated outcome. */
export function gpuJob(
  name: string,
  options: { gpus?: number; annotations?: Record<string, string>; spec?: Partial<k8s.V1JobSpec> } = {},
): k8s.V1Job {
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, labels: { 'lvr.dev/test': 'k8s' } },
    spec: {
      backoffLimit: 0,
      ...options.spec,
      template: {
        metadata: {
          labels: { 'lvr.dev/test': 'k8s' },
          annotations: { 'lvr.dev/test': 'k8s', ...options.annotations },
        },
        spec: {
          restartPolicy: 'Never',
          tolerations: [GPU_TOLERATION],
          containers: [
            {
              name: 'trainer',
              image: 'registry.invalid/lvr/trainer:test',
              resources: { limits: { [GPU]: String(options.gpus ?? 1) } },
            },
          ],
        },
      },
    },
  };
}

export function jobPodsPath(namespace: string): string {
  return `/api/v1/namespaces/${namespace}/pods`;
}

export function jobPath(namespace: string): string {
  return `/apis/batch/v1/namespaces/${namespace}/jobs`;
}

export function jobSelector(jobName: string): Record<string, string> {
  return { labelSelector: `batch.kubernetes.io/job-name=${jobName}` };
}

export function isFinished(job: k8s.V1Job): boolean {
  return Boolean(condition(job, 'Complete') || condition(job, 'Failed'));
}
