import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type * as k8s from '@kubernetes/client-node';
import { type PodSettings, buildRendezvousService, buildRunJob } from '../src';

const settings: PodSettings = {
  namespace: 'ml',
  image: 'worker:1',
  gpuResource: 'nvidia.com/gpu',
  gpuNodeSelector: { 'nvidia.com/gpu.present': 'true' },
  gpuTolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
  cpuRequest: '4',
  memoryRequest: '32Gi',
  memoryLimit: '64Gi',
  shmSizeLimit: '16Gi',
  backoffLimit: 3,
  activeDeadlineSeconds: 86400,
  ttlSecondsAfterFinished: 3600,
  terminationGracePeriodSeconds: 600,
  defaultPriorityClassName: 'training',
  runAsUser: 1000,
  env: { LVR_KAFKA_BROKERS: 'kafka:9092' },
  secretEnv: [{ name: 'LVR_S3_SECRET_KEY', secretName: 's3', key: 'secretKey' }],
};
const record: k8s.V1ConfigMap = { metadata: { name: 'run-r1', uid: 'uid-1' } };

describe('training Job spec', () => {
  it('asks for the GPUs on GPU nodes with the policies of a retry-safe training pod', () => {
    const job = buildRunJob({ runId: 'r1', stage: 'sft', gpusPerNode: 8, nodes: 1 }, record, settings, {
      suspend: true,
    });
    const spec = job.spec!;
    const pod = spec.template.spec!;
    const container = pod.containers[0];
    assert.equal(spec.suspend, true);
    assert.equal(spec.activeDeadlineSeconds, 86400);
    assert.equal(spec.podReplacementPolicy, 'Failed');
    assert.equal(pod.priorityClassName, 'training');
    assert.equal(pod.restartPolicy, 'Never');
    assert.deepEqual(pod.nodeSelector, { 'nvidia.com/gpu.present': 'true' });
    assert.equal(container.resources!.limits!['nvidia.com/gpu'], '8');
    assert.equal(container.resources!.requests!['nvidia.com/gpu'], '8');
    assert.equal(container.resources!.requests!.memory, '32Gi');
    assert.equal(pod.volumes!.find((v) => v.name === 'dshm')!.emptyDir!.sizeLimit, '16Gi');
    assert.ok(container.command!.includes('--nproc-per-node=8'));
    assert.equal(
      container.env!.find((e) => e.name === 'LVR_S3_SECRET_KEY')!.value,
      undefined,
      'no secret values',
    );
    assert.equal(job.metadata!.ownerReferences![0].uid, 'uid-1');
  });

  it('runs a CPU-only, one-process run with plain python and no GPU placement', () => {
    const job = buildRunJob({ runId: 'r1', stage: 'grpo', gpusPerNode: 0, nodes: 1 }, record, settings, {
      suspend: false,
    });
    const pod = job.spec!.template.spec!;
    assert.deepEqual(pod.containers[0].command, [
      'python',
      '-m',
      'lvr',
      'grpo',
      '--spec',
      '/etc/lvr/run.json',
    ]);
    assert.equal(pod.tolerations, undefined);
    assert.equal(pod.nodeSelector, undefined);
    assert.equal(pod.containers[0].resources!.limits!['nvidia.com/gpu'], undefined);
  });

  it('gives a multi-node run an Indexed Job and a headless Service selecting its pods', () => {
    const run = { runId: 'r1', stage: 'sft', gpusPerNode: 8, nodes: 4 };
    const job = buildRunJob(run, record, settings, { suspend: false });
    assert.equal(job.spec!.completionMode, 'Indexed');
    assert.equal(job.spec!.completions, 4);
    assert.equal(job.spec!.template.spec!.subdomain, 'run-r1');
    const service = buildRendezvousService(run, record, 'ml');
    assert.equal(service.spec!.clusterIP, 'None');
    assert.deepEqual(service.spec!.selector, { 'batch.kubernetes.io/job-name': 'run-r1' });
    assert.ok(
      job.spec!.template.spec!.containers[0].command!.includes(
        '--rdzv-endpoint=run-r1-0.run-r1.ml.svc:29500',
      ),
    );
  });
});
