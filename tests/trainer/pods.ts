// Pod helpers for the trainer suites: find a run's pods and drive their kwok outcome.
import * as k8s from '@kubernetes/client-node';
import type { Cluster } from '../k8s/cluster';

/** Sets annotations on a pod (kwok reads `kwok.lvr.dev/outcome`). */
export async function patchPod(
  cluster: Cluster,
  namespace: string,
  name: string,
  annotations: Record<string, string>,
) {
  await cluster.core.patchNamespacedPod(
    { namespace, name, body: { metadata: { annotations } } },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
  );
}

/** Waits until a pod of the run matches `until`, polling the API server. */
export async function waitForPod(
  cluster: Cluster,
  namespace: string,
  runId: string,
  until: (pod: k8s.V1Pod) => boolean,
  timeoutMs = 60_000,
): Promise<k8s.V1Pod> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pods = await cluster.core.listNamespacedPod({
      namespace,
      labelSelector: `lvr.dev/run-id=${runId}`,
    });
    const pod = pods.items.find(until);
    if (pod) return pod;
    if (Date.now() > deadline) throw new Error(`no pod of ${runId} matched in time`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The run's Running pods once there are `count` of them (count 0: whatever exists now). */
export async function runPods(
  cluster: Cluster,
  namespace: string,
  runId: string,
  count = 1,
): Promise<k8s.V1Pod[]> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const pods = (
      await cluster.core.listNamespacedPod({ namespace, labelSelector: `lvr.dev/run-id=${runId}` })
    ).items;
    if (count === 0) return pods;
    const running = pods.filter((p) => p.status?.phase === 'Running');
    if (running.length >= count) return running;
    if (Date.now() > deadline)
      throw new Error(`${runId} has ${running.length} running pods, expected ${count}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
