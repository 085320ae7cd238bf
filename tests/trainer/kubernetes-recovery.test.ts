// The trainer keeps no state of its own: killed with SIGKILL mid-run it rebuilds everything from the cluster and
// Kafka; with two replicas one leads through a Lease; with a GPU budget, Jobs wait suspended and are admitted in
// priority, then arrival order.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { type Cluster, OUTCOME, connect, createNamespace } from '../k8s/cluster';
import { uniqueName } from '../support/env';
import {
  EventRecorder,
  getJson,
  produce,
  runViewInPhase,
  startTrainerProcess,
  type SuiteTopics,
  suiteTopics,
  topicEnv,
  type TrainerProcess,
  trainingRequest,
} from './harness';
import { patchPod, releaseNamespace, runPods } from './pods';

interface Suite {
  namespace: string;
  topics: SuiteTopics;
  events: EventRecorder;
  env: Record<string, string>;
}

async function waitForRole(trainer: TrainerProcess, role: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const current = await getJson<{ role: string }>(`${trainer.url}/v1/trainer`).catch(() => undefined);
    if (current?.body.role === role) return;
    if (Date.now() > deadline) throw new Error(`trainer never became ${role}:\n${trainer.output()}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('trainer: crash recovery, leader election and GPU budget', () => {
  let cluster: Cluster;
  const suites: Suite[] = [];
  const trainers: TrainerProcess[] = [];
  const priorityClasses: string[] = [];

  before(() => {
    cluster = connect();
  });

  after(async () => {
    for (const trainer of trainers) await trainer.stop('SIGKILL');
    for (const suite of suites) {
      await suite.events.stop();
      await releaseNamespace(cluster, suite.namespace);
    }
    const scheduling = cluster.kc.makeApiClient(k8s.SchedulingV1Api);
    for (const name of priorityClasses) await scheduling.deletePriorityClass({ name }).catch(() => undefined);
  });

  async function suite(prefix: string, extra: Record<string, string> = {}): Promise<Suite> {
    const namespace = await createNamespace(cluster, prefix);
    const topics = await suiteTopics(prefix);
    const events = await EventRecorder.start(topics.events);
    const env = {
      ...topicEnv(topics),
      LVR_TRAINER_EXECUTOR: 'kubernetes',
      LVR_TRAINER_NAMESPACE: namespace,
      TRAINER_GROUP_ID: uniqueName(prefix),
      LVR_TRAINER_LEASE_NAME: 'trainer-leader',
      LVR_TRAINER_LEASE_SECONDS: '3',
      LVR_TRAINER_RESYNC_SECONDS: '2',
      LVR_TRAINER_CPU_REQUEST: '100m',
      LVR_TRAINER_MEMORY_REQUEST: '256Mi',
      LVR_TRAINER_MEMORY_LIMIT: '1Gi',
      ...extra,
    };
    const s = { namespace, topics, events, env };
    suites.push(s);
    return s;
  }

  async function start(s: Suite, identity: string): Promise<TrainerProcess> {
    const trainer = await startTrainerProcess({ ...s.env, POD_NAME: identity });
    trainers.push(trainer);
    return trainer;
  }

  /**
   * Each transition exists once. A SIGKILL between publishing a transition and recording it re-sends that message
   * with the same id (ids are derived from run id and transition), which consumers drop as a redelivery; so this
   * counts distinct message ids per type.
   */
  const distinctTypes = (s: Suite, runId: string) => {
    const seen = new Set<string>();
    const fresh = s.events.of(runId).filter((e) => !seen.has(e.id) && Boolean(seen.add(e.id)));
    return fresh.map((e) => e.type).filter((t) => t !== 'Progress' && t !== 'CheckpointSaved');
  };
  const once = (s: Suite, runId: string) => {
    const types = distinctTypes(s, runId);
    for (const type of new Set(types))
      assert.equal(types.filter((t) => t === type).length, 1, `${type} of ${runId} published once: ${types}`);
  };

  it('rebuilds its state after SIGKILL: no run lost, no second Job, no event twice', async () => {
    const s = await suite('trainer-crash');
    const first = await start(s, 'replica-a');
    await waitForRole(first, 'leader');
    const runId = uniqueName('crash');
    const request = trainingRequest(runId);
    await produce(s.topics.requests, runId, request);
    await s.events.next(runId, 'Running');
    const [pod] = await runPods(cluster, s.namespace, runId);
    const jobUid = (await cluster.batch.readNamespacedJob({ namespace: s.namespace, name: `run-${runId}` }))
      .metadata!.uid;

    await first.stop('SIGKILL');
    // While no trainer runs: the pod finishes, the request is redelivered, and a new run is requested.
    await patchPod(cluster, s.namespace, pod.metadata!.name!, { [OUTCOME]: 'Succeeded' });
    await produce(s.topics.requests, runId, { ...request, id: uniqueName('redelivered') });
    const later = uniqueName('while-down');
    await produce(s.topics.requests, later, trainingRequest(later));

    const second = await start(s, 'replica-b');
    await waitForRole(second, 'leader');
    await s.events.next(runId, 'Succeeded');
    await s.events.next(later, 'Running');
    const jobs = await cluster.batch.listNamespacedJob({
      namespace: s.namespace,
      labelSelector: `lvr.dev/run-id=${runId}`,
    });
    assert.equal(jobs.items.length, 1);
    assert.equal(jobs.items[0].metadata!.uid, jobUid, 'the same Job, never created twice');
    // Give a would-be duplicate time to show up before counting.
    await new Promise((r) => setTimeout(r, 3000));
    assert.deepEqual(distinctTypes(s, runId), ['Accepted', 'Scheduled', 'Running', 'Succeeded']);
    const terminal = s.events.of(runId).filter((e) => e.type === 'Succeeded');
    assert.equal(terminal.length, 1, 'the terminal event is sent once (it happened after the restart)');
    once(s, runId);
    once(s, later);
    await second.stop();
  });

  it('runs two replicas with one leader; the standby takes over when the leader leaves', async () => {
    const s = await suite('trainer-ha');
    const a = await start(s, 'replica-a');
    await waitForRole(a, 'leader');
    const b = await start(s, 'replica-b');
    await waitForRole(b, 'standby');
    await new Promise((r) => setTimeout(r, 4000));
    assert.equal(
      (await getJson<{ role: string }>(`${b.url}/v1/trainer`)).body.role,
      'standby',
      'one leader at a time',
    );

    const runId = uniqueName('ha');
    await produce(s.topics.requests, runId, trainingRequest(runId));
    await s.events.next(runId, 'Running');
    const lease = await cluster.kc
      .makeApiClient(k8s.CoordinationV1Api)
      .readNamespacedLease({ namespace: s.namespace, name: 'trainer-leader' });
    assert.equal(lease.spec!.holderIdentity, 'replica-a');

    await a.stop('SIGTERM');
    await waitForRole(b, 'leader');
    const cancel = await fetch(`${b.url}/v1/runs/${runId}/cancel`, { method: 'POST' });
    assert.equal(cancel.status, 202);
    await s.events.next(runId, 'Cancelled');
    once(s, runId);
    assert.equal((await runViewInPhase(b.url, runId, 'Cancelled')).phase, 'Cancelled');
    await b.stop();
  });

  it('queues runs beyond the GPU budget as suspended Jobs and admits them by priority, then arrival', async () => {
    const s = await suite('trainer-budget', { LVR_TRAINER_GPU_BUDGET: '2' });
    const scheduling = cluster.kc.makeApiClient(k8s.SchedulingV1Api);
    const high = uniqueName('lvr-high');
    priorityClasses.push(high);
    await scheduling.createPriorityClass({
      body: { metadata: { name: high }, value: 1000, preemptionPolicy: 'Never' },
    });
    const trainer = await start(s, 'replica-a');
    await waitForRole(trainer, 'leader');

    const big = uniqueName('q-big');
    await produce(s.topics.requests, big, trainingRequest(big, { resources: { gpusPerNode: 2 } }));
    await s.events.next(big, 'Running');
    const [low1, low2, low3, urgent] = ['q-low1', 'q-low2', 'q-low3', 'q-urgent'].map(uniqueName);
    for (const runId of [low1, low2, low3]) {
      await produce(s.topics.requests, runId, trainingRequest(runId, { resources: { gpusPerNode: 1 } }));
      await s.events.next(runId, 'Accepted');
    }
    await produce(
      s.topics.requests,
      urgent,
      trainingRequest(urgent, { resources: { gpusPerNode: 2, priorityClassName: high } }),
    );
    await s.events.next(urgent, 'Accepted');

    const suspended = async (runId: string) =>
      (await cluster.batch.readNamespacedJob({ namespace: s.namespace, name: `run-${runId}` })).spec!.suspend;
    const settle = () => new Promise((r) => setTimeout(r, 2500));
    await settle();
    for (const runId of [low1, low2, low3, urgent])
      assert.equal(await suspended(runId), true, `${runId} waits`);
    const queued = await getJson<{ queued: boolean }>(`${trainer.url}/v1/runs/${low1}`);
    assert.equal(queued.body.queued, true);

    // Two GPUs free up: the later but higher-priority run goes first and takes both.
    const [bigPod] = await runPods(cluster, s.namespace, big);
    await patchPod(cluster, s.namespace, bigPod.metadata!.name!, { [OUTCOME]: 'Succeeded' });
    await s.events.next(urgent, 'Running');
    await settle();
    for (const runId of [low1, low2, low3])
      assert.equal(await suspended(runId), true, `${runId} still waits`);

    // Two GPUs free up again: the equal-priority runs are admitted in arrival order.
    const [urgentPod] = await runPods(cluster, s.namespace, urgent);
    await patchPod(cluster, s.namespace, urgentPod.metadata!.name!, { [OUTCOME]: 'Succeeded' });
    await s.events.next(low1, 'Running');
    await s.events.next(low2, 'Running');
    await settle();
    assert.equal(await suspended(low3), true, 'the third 1-GPU run waits for budget');
    assert.ok(!s.events.types(low3).includes('Scheduled'));
    await trainer.stop();
  });
});
