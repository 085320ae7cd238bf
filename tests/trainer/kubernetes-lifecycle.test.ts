// The trainer with the kubernetes executor against the stack's real API server, Job controller, scheduler and kwok
// nodes, with real Kafka: one request becomes one run whose every transition is published once, in order.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type * as k8s from '@kubernetes/client-node';
import { Topics } from '@lvr/contracts';
import { type Cluster, EXIT_CODE, OUTCOME, connect, createNamespace } from '../k8s/cluster';
import { uniqueName } from '../support/env';
import { waitForMessage } from '../support/kafka';
import {
  cancelCommand,
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
import { patchPod, releaseNamespace, runPods, waitForPod } from './pods';

describe('trainer: runs as Kubernetes Jobs', () => {
  let cluster: Cluster;
  let namespace: string;
  let topics: SuiteTopics;
  let trainer: TrainerProcess;
  let events: EventRecorder;

  before(async () => {
    cluster = connect();
    namespace = await createNamespace(cluster, 'trainer');
    topics = await suiteTopics('trainer');
    events = await EventRecorder.start(topics.events);
    trainer = await startTrainerProcess({
      ...topicEnv(topics),
      LVR_TRAINER_EXECUTOR: 'kubernetes',
      LVR_TRAINER_NAMESPACE: namespace,
      TRAINER_GROUP_ID: uniqueName('trainer'),
      LVR_TRAINER_LEASE_NAME: 'trainer-leader',
      LVR_TRAINER_UNSCHEDULABLE_GRACE_SECONDS: '3',
      LVR_TRAINER_RESYNC_SECONDS: '2',
      LVR_TRAINER_BACKOFF_LIMIT: '2',
      LVR_TRAINER_CPU_REQUEST: '100m',
      LVR_TRAINER_MEMORY_REQUEST: '256Mi',
      LVR_TRAINER_MEMORY_LIMIT: '1Gi',
      LVR_TRAINER_S3_SECRET: 'lvr-s3',
      LVR_TRAINER_IMAGE: 'registry.invalid/lvr/worker:test',
    });
    const deadline = Date.now() + 60_000;
    while ((await getJson<{ role: string }>(`${trainer.url}/v1/trainer`)).body.role !== 'leader') {
      if (Date.now() > deadline) throw new Error(`trainer never led:\n${trainer.output()}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  });

  after(async () => {
    await trainer?.stop();
    await events?.stop();
    if (cluster && namespace) await releaseNamespace(cluster, namespace);
  });

  const phases = (runId: string) =>
    events.types(runId).filter((t) => t !== 'Progress' && t !== 'CheckpointSaved');

  it('runs a request to Succeeded: ConfigMap, Job with the full pod spec, each transition once', async () => {
    const runId = uniqueName('ok');
    await produce(topics.requests, runId, trainingRequest(runId, { resources: { gpusPerNode: 2 } }));
    await events.next(runId, 'Running');
    const [pod] = await runPods(cluster, namespace, runId);

    const job = (
      await cluster.batch.listNamespacedJob({ namespace, labelSelector: `lvr.dev/run-id=${runId}` })
    ).items;
    assert.equal(job.length, 1, 'exactly one Job for the run');
    const spec = job[0].spec!;
    assert.equal(job[0].metadata!.name, `run-${runId}`);
    assert.equal(job[0].metadata!.labels!['lvr.dev/stage'], 'sft');
    assert.equal(spec.completions, 1);
    assert.equal(spec.completionMode ?? 'NonIndexed', 'NonIndexed');
    assert.equal(spec.backoffLimit, 2);
    assert.ok(spec.ttlSecondsAfterFinished! > 0);
    const rules = spec.podFailurePolicy!.rules;
    assert.deepEqual(
      rules.map((r) => r.action),
      ['Ignore', 'FailJob', 'Count'],
    );
    assert.equal(rules[0].onPodConditions![0].type, 'DisruptionTarget');
    assert.deepEqual(rules[1].onExitCodes!.values, [78]);
    const owner = job[0].metadata!.ownerReferences![0];
    assert.equal(owner.kind, 'ConfigMap');
    const configMap = await cluster.core.readNamespacedConfigMap({ namespace, name: `run-${runId}` });
    assert.equal(owner.uid, configMap.metadata!.uid);
    assert.equal(JSON.parse(configMap.data!['run.json']).runId, runId);

    const container = pod.spec!.containers[0];
    assert.equal(container.resources!.limits!['nvidia.com/gpu'], '2');
    assert.ok(pod.spec!.tolerations!.some((t) => t.key === 'nvidia.com/gpu'));
    assert.equal(pod.spec!.securityContext!.runAsNonRoot, true);
    assert.equal(container.securityContext!.allowPrivilegeEscalation, false);
    const shm = pod.spec!.volumes!.find((v) => v.name === 'dshm')!;
    assert.equal(shm.emptyDir!.medium, 'Memory');
    assert.ok(container.volumeMounts!.some((m) => m.mountPath === '/dev/shm'));
    assert.ok(container.volumeMounts!.some((m) => m.mountPath === '/etc/lvr'));
    const secretEnv = container.env!.find((e) => e.name === 'LVR_S3_SECRET_KEY')!;
    assert.equal(secretEnv.valueFrom!.secretKeyRef!.name, 'lvr-s3', 'credentials only as Secret references');
    assert.equal(
      container.env!.find((e) => e.name === 'LVR_TOPIC_TRAINING_EVENTS')!.value,
      topics.workerEvents,
    );
    assert.deepEqual(container.command!.slice(0, 2), ['torchrun', '--nnodes=1']);

    await patchPod(cluster, namespace, pod.metadata!.name!, { [OUTCOME]: 'Succeeded' });
    await events.next(runId, 'Succeeded');
    assert.deepEqual(phases(runId), ['Accepted', 'Scheduled', 'Running', 'Succeeded']);
    assert.equal(
      new Set(events.of(runId).map((e) => e.id)).size,
      events.of(runId).length,
      'distinct message ids',
    );

    const view = await runViewInPhase<{ phase: string; conditions: Array<{ type: string; time: string }> }>(
      trainer.url,
      runId,
      'Succeeded',
    );
    assert.equal(view.phase, 'Succeeded');
    assert.deepEqual(
      view.conditions.map((c) => c.type),
      ['Accepted', 'Scheduled', 'Running', 'Succeeded'],
    );
    const listed = await getJson<{ data: Array<{ runId: string }> }>(
      `${trainer.url}/v1/runs?phase=Succeeded`,
    );
    assert.ok(listed.body.data.some((r) => r.runId === runId));
  });

  it('retries an evicted pod: Retrying(evicted), a new pod on the same spec and checkpoint prefix, then Succeeded', async () => {
    const runId = uniqueName('evict');
    await produce(topics.requests, runId, trainingRequest(runId));
    await events.next(runId, 'Running');
    const [first] = await runPods(cluster, namespace, runId);
    await patchPod(cluster, namespace, first.metadata!.name!, { [OUTCOME]: 'Evicted' });
    const retrying = await events.next(runId, 'Retrying');
    assert.equal(retrying.reason, 'evicted');
    const second = await waitForPod(
      cluster,
      namespace,
      runId,
      (p) => p.metadata!.name !== first.metadata!.name && p.status?.phase === 'Running',
    );
    await events.waitFor(
      'Running of attempt 1',
      () => events.of(runId).filter((e) => e.type === 'Running').length === 2,
    );
    const volume = (p: k8s.V1Pod) => p.spec!.volumes!.find((v) => v.name === 'run-spec')!.configMap!.name;
    assert.equal(volume(second), volume(first), 'the retry reads the same run spec (same checkpoint prefix)');
    await patchPod(cluster, namespace, second.metadata!.name!, { [OUTCOME]: 'Succeeded' });
    await events.next(runId, 'Succeeded');
    assert.deepEqual(phases(runId), [
      'Accepted',
      'Scheduled',
      'Running',
      'Retrying',
      'Scheduled',
      'Running',
      'Succeeded',
    ]);
    assert.equal(events.of(runId).find((e) => e.type === 'Retrying')!.data!.attempt, 1);
  });

  it('fails at once on exit 78 (no retry) with the exit code', async () => {
    const runId = uniqueName('bad-spec');
    await produce(topics.requests, runId, trainingRequest(runId));
    await events.next(runId, 'Running');
    const [pod] = await runPods(cluster, namespace, runId);
    await patchPod(cluster, namespace, pod.metadata!.name!, { [OUTCOME]: 'Failed', [EXIT_CODE]: '78' });
    const failed = await events.next(runId, 'Failed');
    assert.equal(failed.data!.exitCode, 78);
    assert.match(failed.reason!, /exit 78/);
    assert.ok(!events.types(runId).includes('Retrying'));
    assert.equal((await runPods(cluster, namespace, runId, 0)).length, 1, 'no second pod');
  });

  it('cancels a running run through lvr.training.commands: Cancelled, Job deleted', async () => {
    const runId = uniqueName('cancel');
    await produce(topics.requests, runId, trainingRequest(runId));
    await events.next(runId, 'Running');
    await produce(topics.commands, runId, cancelCommand(runId));
    const cancelled = await events.next(runId, 'Cancelled');
    assert.match(cancelled.reason!, /cancel/);
    const deadline = Date.now() + 30_000;
    while (
      (await cluster.batch.listNamespacedJob({ namespace, labelSelector: `lvr.dev/run-id=${runId}` })).items
        .length
    ) {
      assert.ok(Date.now() < deadline, 'the Job is deleted');
      await new Promise((r) => setTimeout(r, 250));
    }
    const view = await runViewInPhase(trainer.url, runId, 'Cancelled');
    assert.equal(view.phase, 'Cancelled', 'the run record outlives its Job');
  });

  it('is idempotent by run id: a duplicate creates nothing, a different spec under the same id is Rejected', async () => {
    const runId = uniqueName('dup');
    const request = trainingRequest(runId);
    await produce(topics.requests, runId, request);
    await events.next(runId, 'Accepted');
    await produce(topics.requests, runId, { ...request, id: uniqueName('again') });
    await produce(topics.requests, runId, request);
    await produce(topics.requests, runId, { ...request, id: uniqueName('other'), stage: 'grpo' });
    const rejected = await events.next(runId, 'Rejected');
    assert.match(rejected.reason!, /different spec/);
    const jobs = await cluster.batch.listNamespacedJob({
      namespace,
      labelSelector: `lvr.dev/run-id=${runId}`,
    });
    assert.equal(jobs.items.length, 1);
    assert.equal(jobs.items[0].metadata!.labels!['lvr.dev/stage'], 'sft', 'the first spec stands');
    assert.equal(events.types(runId).filter((t) => t === 'Accepted').length, 1);
  });

  it('dead-letters a poison message and keeps consuming', async () => {
    const runId = uniqueName('poison');
    const payload = JSON.stringify({ apiVersion: 'lvr.training/v1', runId, stage: 'pretrain' });
    await produce(topics.requests, runId, payload);
    await produce(topics.requests, 'garbage', Buffer.from([0xff, 0xfe, 0x00]).toString('latin1'));
    const dead = await waitForMessage<{ key: string; reason: string; payload: string }>(
      Topics.deadLetter,
      (m) => m.key === runId,
    );
    assert.equal(dead.payload, payload);
    assert.match((await events.next(runId, 'Rejected')).reason!, /stage/);
    const next = uniqueName('after-poison');
    await produce(topics.requests, next, trainingRequest(next));
    await events.next(next, 'Accepted');
  });

  it('fails an unschedulable run after the grace period instead of leaving it Pending', async () => {
    const runId = uniqueName('too-big');
    await produce(topics.requests, runId, trainingRequest(runId, { resources: { gpusPerNode: 9 } }));
    const failed = await events.next(runId, 'Failed');
    assert.match(failed.reason!, /Unschedulable/);
    assert.match(failed.reason!, /nvidia\.com\/gpu/);
    assert.ok(!events.types(runId).includes('Running'));
  });

  it('fails a run naming an unknown priority class before creating a Job', async () => {
    const runId = uniqueName('prio');
    await produce(
      topics.requests,
      runId,
      trainingRequest(runId, { resources: { gpusPerNode: 1, priorityClassName: 'no-such-class' } }),
    );
    const failed = await events.next(runId, 'Failed');
    assert.match(failed.reason!, /unknown priority class "no-such-class"/);
    const jobs = await cluster.batch.listNamespacedJob({
      namespace,
      labelSelector: `lvr.dev/run-id=${runId}`,
    });
    assert.equal(jobs.items.length, 0);
  });

  it('runs a multi-node request as an Indexed Job with a headless Service and torchrun rendezvous env', async () => {
    const runId = uniqueName('multi');
    await produce(
      topics.requests,
      runId,
      trainingRequest(runId, { resources: { gpusPerNode: 1, nodes: 2 } }),
    );
    await events.next(runId, 'Running');
    const job = (await cluster.batch.readNamespacedJob({ namespace, name: `run-${runId}` })).spec!;
    assert.equal(job.completionMode, 'Indexed');
    assert.equal(job.completions, 2);
    assert.equal(job.parallelism, 2);
    const service = await cluster.core.readNamespacedService({ namespace, name: `run-${runId}` });
    assert.equal(service.spec!.clusterIP, 'None');
    const pods = await runPods(cluster, namespace, runId, 2);
    for (const pod of pods) {
      assert.equal(pod.spec!.subdomain, `run-${runId}`);
      const command = pod.spec!.containers[0].command!.join(' ');
      assert.match(command, /--nnodes=2/);
      assert.match(command, /--node-rank=\$\(PET_NODE_RANK\)/);
      assert.ok(command.includes(`--rdzv-endpoint=run-${runId}-0.run-${runId}.${namespace}.svc:29500`));
      const rank = pod.spec!.containers[0].env!.find((e) => e.name === 'PET_NODE_RANK')!;
      assert.match(rank.valueFrom!.fieldRef!.fieldPath, /job-completion-index/);
    }
    assert.deepEqual(pods.map((p) => p.spec!.hostname).sort(), [`run-${runId}-0`, `run-${runId}-1`]);
    for (const pod of pods)
      await patchPod(cluster, namespace, pod.metadata!.name!, { [OUTCOME]: 'Succeeded' });
    await events.next(runId, 'Succeeded');
    assert.deepEqual(phases(runId), ['Accepted', 'Scheduled', 'Running', 'Succeeded']);
  });
});
