// A training Job survives evictions and preemptions: its podFailurePolicy ignores pods with the DisruptionTarget
// condition, so the Job controller replaces them without spending the backoff budget.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type * as k8s from '@kubernetes/client-node';
import {
  type Cluster,
  OUTCOME,
  condition,
  connect,
  createNamespace,
  deleteNamespace,
  gpuJob,
  isFinished,
  jobPath,
  jobPodsPath,
  jobSelector,
  startWatch,
} from './cluster';

describe('Job pod disruptions on the test cluster', () => {
  let cluster: Cluster;
  let namespace: string;

  before(async () => {
    cluster = connect();
    namespace = await createNamespace(cluster, 'disruption');
  });

  after(async () => {
    if (cluster && namespace) await deleteNamespace(cluster, namespace);
  });

  /** Waits for a Running pod of the Job other than those already seen. */
  async function nextRunningPod(
    jobName: string,
    seen: string[],
    action: () => Promise<unknown>,
  ): Promise<string> {
    const pods = await startWatch<k8s.V1Pod>(
      cluster,
      jobPodsPath(namespace),
      jobSelector(jobName),
      (_t, pod) => pod.status?.phase === 'Running' && !seen.includes(pod.metadata!.name!),
      `a new running pod of Job ${jobName} (after ${seen.join(', ') || 'none'})`,
    );
    await action();
    return (await pods.done).at(-1)!.object.metadata!.name!;
  }

  function setOutcome(pod: string, outcome: string) {
    return cluster.core.patchNamespacedPod({
      namespace,
      name: pod,
      body: [{ op: 'add', path: `/metadata/annotations/${OUTCOME.replace('/', '~1')}`, value: outcome }],
    });
  }

  it('replaces an evicted and a preempted pod and still completes', async () => {
    const name = 'sft-disrupted';
    const jobs = await startWatch<k8s.V1Job>(
      cluster,
      jobPath(namespace),
      { fieldSelector: `metadata.name=${name}` },
      (_t, job) => isFinished(job),
      `Job ${name} to finish`,
      180_000,
    );
    const body = gpuJob(name, {
      spec: {
        backoffLimit: 0,
        podFailurePolicy: {
          rules: [
            { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] },
            { action: 'FailJob', onExitCodes: { operator: 'NotIn', values: [0] } },
          ],
        },
      },
    });

    const first = await nextRunningPod(name, [], () =>
      cluster.batch.createNamespacedJob({ namespace, body }),
    );
    const second = await nextRunningPod(name, [first], () => setOutcome(first, 'Evicted'));
    const third = await nextRunningPod(name, [first, second], () => setOutcome(second, 'Preempted'));
    await setOutcome(third, 'Succeeded');

    const job = (await jobs.done).at(-1)!.object;
    assert.ok(
      condition(job, 'Complete'),
      `Job is Complete (conditions: ${JSON.stringify(job.status?.conditions)})`,
    );
    assert.equal(job.status?.succeeded, 1);
    assert.equal(job.status?.failed ?? 0, 0, 'disruptions do not count as failures');

    const pods = await cluster.core.listNamespacedPod({ namespace, ...jobSelector(name) });
    const byName = new Map(pods.items.map((p) => [p.metadata!.name!, p]));
    assert.equal(byName.size, 3);
    const evicted = byName.get(first)!;
    assert.equal(evicted.status?.phase, 'Failed');
    assert.equal(evicted.status?.reason, 'Evicted');
    assert.equal(condition(evicted, 'DisruptionTarget')?.reason, 'TerminationByKubelet');
    const preempted = byName.get(second)!;
    assert.equal(preempted.status?.phase, 'Failed');
    assert.equal(condition(preempted, 'DisruptionTarget')?.reason, 'PreemptionByScheduler');
    assert.equal(byName.get(third)!.status?.phase, 'Succeeded');
  });
});
