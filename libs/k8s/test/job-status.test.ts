import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type * as k8s from '@kubernetes/client-node';
import { podFailure, runObjectName, workloadStatus } from '../src';

let clock = 0;
function pod(name: string, status: k8s.V1PodStatus, nodeName?: string): k8s.V1Pod {
  clock += 1000;
  return {
    metadata: { name, creationTimestamp: new Date(clock) },
    spec: { containers: [{ name: 'trainer' }], ...(nodeName ? { nodeName } : {}) },
    status,
  };
}
const running = (name: string) => pod(name, { phase: 'Running' }, 'gpu-0');
const terminated = (exitCode: number) =>
  [
    {
      name: 'trainer',
      image: 'x',
      imageID: '',
      ready: false,
      restartCount: 0,
      state: { terminated: { exitCode } },
    },
  ] as k8s.V1ContainerStatus[];
const job = (conditions: k8s.V1JobCondition[] = [], suspend = false): k8s.V1Job => ({
  spec: { suspend, template: {} },
  status: { conditions },
});

describe('workload status from Job and pods', () => {
  it('goes Pending → Scheduled → Running as the pod is bound and runs', () => {
    assert.equal(workloadStatus(job(), [], 1).phase, 'Pending');
    assert.equal(workloadStatus(job(), [pod('a', { phase: 'Pending' })], 1).phase, 'Pending');
    assert.equal(workloadStatus(job(), [pod('a', { phase: 'Pending' }, 'gpu-0')], 1).phase, 'Scheduled');
    assert.equal(workloadStatus(job(), [running('a')], 1).phase, 'Running');
  });

  it('waits for every pod of a multi-node run before calling it Running', () => {
    assert.equal(
      workloadStatus(job(), [running('a'), pod('b', { phase: 'Pending' }, 'gpu-1')], 2).phase,
      'Scheduled',
    );
    assert.equal(workloadStatus(job(), [running('a'), running('b')], 2).phase, 'Running');
  });

  it('names each survived pod failure as a retry with its reason', () => {
    const evicted = pod('a', {
      phase: 'Failed',
      reason: 'Evicted',
      conditions: [{ type: 'DisruptionTarget', status: 'True', reason: 'TerminationByKubelet' }],
    });
    const preempted = pod('b', {
      phase: 'Failed',
      conditions: [{ type: 'DisruptionTarget', status: 'True', reason: 'PreemptionByScheduler' }],
    });
    const sigterm = pod('c', { phase: 'Failed', containerStatuses: terminated(75) });
    const status = workloadStatus(job(), [evicted, preempted, sigterm, running('d')], 1);
    assert.equal(status.phase, 'Running');
    assert.deepEqual(
      status.retries.map((r) => r.reason),
      ['evicted', 'preempted', 'exit 75 (stopped after saving a checkpoint)'],
    );
  });

  it('ends with the Job: Complete is Succeeded, exit 78 under PodFailurePolicy is a not-retried failure', () => {
    const done = workloadStatus(
      job([{ type: 'Complete', status: 'True' }]),
      [pod('a', { phase: 'Succeeded' })],
      1,
    );
    assert.equal(done.phase, 'Succeeded');
    const failed = workloadStatus(
      job([{ type: 'Failed', status: 'True', reason: 'PodFailurePolicy', message: 'exit 78' }]),
      [pod('a', { phase: 'Failed', containerStatuses: terminated(78) })],
      1,
    );
    assert.equal(failed.phase, 'Failed');
    assert.equal(failed.exitCode, 78);
    assert.deepEqual(failed.retries, [], 'the fatal failure is not a retry');
    assert.match(failed.reason!, /not retried/);
  });

  it('never reports a fatal failure as a retry, even before the Job controller marks the Job', () => {
    const invalid = pod('a', { phase: 'Failed', containerStatuses: terminated(78) });
    assert.deepEqual(workloadStatus(job(), [invalid], 1).retries, []);
    const limited: k8s.V1Job = { ...job(), spec: { backoffLimit: 1, template: {} } };
    const crashes = [
      pod('b', { phase: 'Failed', containerStatuses: terminated(1) }),
      pod('c', { phase: 'Failed', containerStatuses: terminated(1) }),
    ];
    assert.equal(
      workloadStatus(limited, crashes, 1).retries.length,
      1,
      'the failure past backoffLimit is the fatal one',
    );
  });

  it('reports a suspended Job as Queued and an unplaceable pod with the scheduler message', () => {
    assert.equal(workloadStatus(job([], true), [], 1).phase, 'Queued');
    const stuck = pod('a', {
      phase: 'Pending',
      conditions: [
        {
          type: 'PodScheduled',
          status: 'False',
          reason: 'Unschedulable',
          message: '0/3 nodes are available: Insufficient nvidia.com/gpu',
          lastTransitionTime: new Date(5000),
        },
      ],
    });
    const status = workloadStatus(job(), [stuck], 1);
    assert.equal(status.phase, 'Pending');
    assert.match(status.unschedulable!.message, /Insufficient nvidia.com\/gpu/);
    assert.equal(status.unschedulable!.since, new Date(5000).toISOString());
  });

  it('reads a node loss from the taint manager disruption', () => {
    const lost = pod('a', {
      phase: 'Failed',
      conditions: [{ type: 'DisruptionTarget', status: 'True', reason: 'DeletionByTaintManager' }],
    });
    assert.equal(podFailure(lost).reason, 'node lost');
  });
});

describe('object names', () => {
  it('derives one DNS-safe name from the run id, short enough for indexed pod hostnames', () => {
    assert.equal(runObjectName('abc'), 'run-abc');
    const long = 'a'.repeat(63);
    const name = runObjectName(long);
    assert.ok(name.length <= 58, name);
    assert.match(name, /^[a-z][a-z0-9-]*[a-z0-9]$/);
    assert.equal(runObjectName(long), name, 'deterministic');
    assert.notEqual(runObjectName(`${'a'.repeat(62)}b`), name, 'distinct ids keep distinct names');
  });
});
