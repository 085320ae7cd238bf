// GPU training Jobs on the stack's real control plane (API server, Job controller, scheduler) with kwok GPU nodes.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type * as k8s from '@kubernetes/client-node';
import {
  type Cluster,
  EXIT_CODE,
  GPU,
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
  phaseHistory,
  startWatch,
} from './cluster';

describe('GPU Jobs on the test cluster', () => {
  let cluster: Cluster;
  let namespace: string;

  before(async () => {
    cluster = connect();
    namespace = await createNamespace(cluster, 'gpu-jobs');
  });

  after(async () => {
    if (cluster && namespace) await deleteNamespace(cluster, namespace);
  });

  it('schedules a 1-GPU Job with the GPU toleration on a GPU node, runs it and completes it', async () => {
    const name = 'sft-ok';
    const pods = await startWatch<k8s.V1Pod>(
      cluster,
      jobPodsPath(namespace),
      jobSelector(name),
      (_t, pod) => pod.status?.phase === 'Succeeded',
      `a pod of Job ${name} to succeed`,
    );
    const jobs = await startWatch<k8s.V1Job>(
      cluster,
      jobPath(namespace),
      { fieldSelector: `metadata.name=${name}` },
      (_t, job) => isFinished(job),
      `Job ${name} to finish`,
    );
    await cluster.batch.createNamespacedJob({
      namespace,
      body: gpuJob(name, { annotations: { [OUTCOME]: 'Succeeded' } }),
    });

    const podEvents = await pods.done;
    const jobEvents = await jobs.done;

    assert.deepEqual(phaseHistory(podEvents), ['Pending', 'Running', 'Succeeded']);
    const scheduled = podEvents.find(({ object }) => condition(object, 'PodScheduled'));
    assert.ok(scheduled, 'the watch saw the pod being scheduled');
    const running = podEvents.find(({ object }) => object.status?.phase === 'Running');
    assert.ok(running?.object.status?.containerStatuses?.[0]?.state?.running, 'container reported running');
    const final = podEvents.at(-1)!.object;
    assert.equal(final.status?.containerStatuses?.[0]?.state?.terminated?.exitCode, 0);

    const nodeName = final.spec?.nodeName;
    assert.ok(nodeName, 'pod is bound to a node');
    const node = await cluster.core.readNode({ name: nodeName });
    assert.equal(node.status?.allocatable?.[GPU], '8', `${nodeName} advertises 8 GPUs`);
    assert.ok(
      node.spec?.taints?.some((t) => t.key === GPU && t.effect === 'NoSchedule'),
      `${nodeName} has the GPU taint`,
    );

    const job = jobEvents.at(-1)!.object;
    assert.ok(condition(job, 'Complete'), 'Job is Complete');
    assert.equal(job.status?.succeeded, 1);
    assert.ok(
      jobEvents.some(({ object }) => object.status?.active === 1),
      'the Job watch saw the pod active before completion',
    );
  });

  it('keeps a CPU-only pod off the tainted GPU nodes', async () => {
    const pods = await startWatch<k8s.V1Pod>(
      cluster,
      jobPodsPath(namespace),
      { fieldSelector: 'metadata.name=cpu-only' },
      (_t, pod) => pod.status?.phase === 'Running',
      'pod cpu-only to run',
    );
    await cluster.core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name: 'cpu-only' },
        spec: { containers: [{ name: 'tool', image: 'registry.invalid/lvr/tool:test' }] },
      },
    });
    const events = await pods.done;
    const node = await cluster.core.readNode({ name: events.at(-1)!.object.spec!.nodeName! });
    assert.equal(node.status?.allocatable?.[GPU], undefined, 'scheduled on the CPU-only node');
  });

  it('leaves a pod asking for more GPUs than any node has Pending as Unschedulable', async () => {
    const pods = await startWatch<k8s.V1Pod>(
      cluster,
      jobPodsPath(namespace),
      { fieldSelector: 'metadata.name=too-big' },
      (_t, pod) =>
        pod.status?.conditions?.some((c) => c.type === 'PodScheduled' && c.status === 'False') ?? false,
      'the scheduler to reject pod too-big',
    );
    await cluster.core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name: 'too-big' },
        spec: {
          tolerations: [{ key: GPU, operator: 'Exists', effect: 'NoSchedule' }],
          containers: [
            {
              name: 'trainer',
              image: 'registry.invalid/lvr/trainer:test',
              resources: { limits: { [GPU]: '9' } },
            },
          ],
        },
      },
    });
    const pod = (await pods.done).at(-1)!.object;
    const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
    assert.equal(scheduled?.reason, 'Unschedulable');
    assert.match(scheduled?.message ?? '', /Insufficient nvidia\.com\/gpu/);
    assert.equal(pod.status?.phase, 'Pending');
    assert.equal(pod.spec?.nodeName, undefined);
  });

  it('fails the Job when its pod exits with an error code', async () => {
    const name = 'grpo-crash';
    const jobs = await startWatch<k8s.V1Job>(
      cluster,
      jobPath(namespace),
      { fieldSelector: `metadata.name=${name}` },
      (_t, job) => isFinished(job),
      `Job ${name} to finish`,
    );
    await cluster.batch.createNamespacedJob({
      namespace,
      body: gpuJob(name, { annotations: { [OUTCOME]: 'Failed', [EXIT_CODE]: '42' } }),
    });
    const job = (await jobs.done).at(-1)!.object;
    const failed = condition(job, 'Failed');
    assert.ok(failed, 'Job is Failed');
    assert.equal(failed.reason, 'BackoffLimitExceeded');
    assert.equal(job.status?.failed, 1);

    const { items } = await cluster.core.listNamespacedPod({ namespace, ...jobSelector(name) });
    assert.equal(items.length, 1);
    assert.equal(items[0].status?.phase, 'Failed');
    assert.equal(items[0].status?.containerStatuses?.[0]?.state?.terminated?.exitCode, 42);
  });

  it('fails the Job at once through a podFailurePolicy rule on the exit code', async () => {
    const name = 'grpo-fatal';
    const jobs = await startWatch<k8s.V1Job>(
      cluster,
      jobPath(namespace),
      { fieldSelector: `metadata.name=${name}` },
      (_t, job) => isFinished(job),
      `Job ${name} to finish`,
    );
    await cluster.batch.createNamespacedJob({
      namespace,
      body: gpuJob(name, {
        annotations: { [OUTCOME]: 'Failed', [EXIT_CODE]: '3' },
        spec: {
          backoffLimit: 5,
          podFailurePolicy: { rules: [{ action: 'FailJob', onExitCodes: { operator: 'In', values: [3] } }] },
        },
      }),
    });
    const job = (await jobs.done).at(-1)!.object;
    assert.equal(condition(job, 'Failed')?.reason, 'PodFailurePolicy');
    assert.equal(job.status?.failed, 1, 'no retry despite backoffLimit 5');
  });
});
