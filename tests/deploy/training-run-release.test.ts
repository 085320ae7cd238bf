// One Helm release = one training run, end to end on the real cluster, Kafka and trainer:
// install → the hook publishes → the trainer creates the Job → kwok drives it to Succeeded → the release shows it;
// uninstall of an active run → Cancelled. The hook pods run on this machine (local-kubelet.ts); the worker pods are
// kwok's.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { Kafka, logLevel } from 'kafkajs';
import { requireEnv, uniqueName } from '../support/env';
import { waitForMessage } from '../support/kafka';
import { type Cluster, connect, createNamespace, deleteNamespace, startWatch } from '../k8s/cluster';
import { chartDir, helm, kubectl, ok } from '../charts/helm';
import { EXIT_CODE, LocalKubelet, OUTCOME } from './local-kubelet';
import { Service, startService } from './processes';

const chart = chartDir('lvr-training-run');
const RUN_LABEL = 'lvr.dev/run-id';
/** The trainer's objects; the chart's own hook Jobs carry the run id too. */
const BY_TRAINER = 'app.kubernetes.io/managed-by=lvr-trainer';

interface RunEvent {
  runId: string;
  type: string;
  reason?: string;
}

describe('training-run release on the cluster with the real trainer', () => {
  let cluster: Cluster;
  let namespace: string;
  let trainer: Service;
  let kubelet: LocalKubelet;
  let brokers: string;
  // Topics of this suite alone: a trainer on the shared topics would also act on every other suite's requests.
  const suffix = uniqueName('release');
  const topics = {
    requests: `lvr.training.requests.${suffix}`,
    commands: `lvr.training.commands.${suffix}`,
    events: `lvr.training.events.${suffix}`,
    workerEvents: `lvr.training.worker-events.${suffix}`,
  };

  before(async () => {
    brokers = requireEnv('LVR_KAFKA_BROKERS');
    const admin = new Kafka({
      clientId: suffix,
      brokers: brokers.split(','),
      logLevel: logLevel.NOTHING,
    }).admin();
    await admin.connect();
    await admin.createTopics({
      topics: Object.values(topics).map((topic) => ({ topic })),
      waitForLeaders: true,
    });
    await admin.disconnect();
    cluster = connect();
    namespace = await createNamespace(cluster, 'run-release');
    kubelet = new LocalKubelet(cluster.kc, namespace, 'app.kubernetes.io/name=lvr-training-run');
    await kubelet.start();
    trainer = await startService('apps/trainer/src/main.ts', 'TRAINER_PORT', {
      LVR_KAFKA_BROKERS: brokers,
      KUBECONFIG: requireEnv('KUBECONFIG'),
      TRAINER_GROUP_ID: uniqueName('release-trainer'),
      LVR_TRAINER_EXECUTOR: 'kubernetes',
      LVR_TRAINER_NAMESPACE: namespace,
      LVR_TRAINER_REQUESTS_TOPIC: topics.requests,
      LVR_TRAINER_COMMANDS_TOPIC: topics.commands,
      LVR_TRAINER_EVENTS_TOPIC: topics.events,
      LVR_TRAINER_WORKER_EVENTS_TOPIC: topics.workerEvents,
      LVR_TRAINER_RESYNC_SECONDS: '2',
      LVR_TRAINER_CPU_REQUEST: '100m',
      LVR_TRAINER_MEMORY_REQUEST: '256Mi',
      LVR_TRAINER_MEMORY_LIMIT: '1Gi',
    });
  });

  after(async () => {
    await trainer?.stop();
    kubelet?.stop();
    if (cluster && namespace) await deleteNamespace(cluster, namespace);
  });

  // A CPU-only run (gpusPerNode 0): the shared test cluster's 16 simulated GPUs may be held by other suites' pods.
  function installArgs(release: string): string[] {
    return [
      'install',
      release,
      chart,
      '--namespace',
      namespace,
      '-f',
      path.join(chart, 'examples', 'sft.yaml'),
      '--set',
      `submit.kafkaBrokers=${brokers}`,
      '--set',
      `submit.topics.requests=${topics.requests}`,
      '--set',
      `submit.topics.commands=${topics.commands}`,
      '--set',
      `submit.topics.events=${topics.events}`,
      '--set',
      'resources.gpusPerNode=0',
      '--set',
      `checkpoint.uri=s3://checkpoints/${release}/`,
      '--timeout',
      '180s',
    ];
  }

  /** Waits for the trainer's Job of the run and returns the name of its first running pod. */
  async function runningWorkerPod(runId: string): Promise<string> {
    const pods = await startWatch<k8s.V1Pod>(
      cluster,
      `/api/v1/namespaces/${namespace}/pods`,
      { labelSelector: `${RUN_LABEL}=${runId},${BY_TRAINER}` },
      (_type, pod) => pod.status?.phase === 'Running',
      `a running worker pod of run ${runId}`,
      120_000,
    );
    return (await pods.done).at(-1)!.object.metadata!.name!;
  }

  const eventOf = (runId: string, type: string) =>
    waitForMessage<RunEvent>(topics.events, (m) => m.runId === runId && m.type === type, 120_000);

  test('install submits the run, the trainer runs it as a Job, kwok completes it, the release shows it', async () => {
    const release = uniqueName('sft').slice(0, 40);
    const installed = await ok(helm(installArgs(release)), 'helm install');
    assert.match(installed, /STATUS: deployed/);
    assert.match(installed, new RegExp(`Training run ${release} \\(sft\\) was submitted and accepted`));

    const submit = await kubelet.next('submit');
    assert.equal(submit.code, 0, submit.stderr);
    assert.match(submit.stdout, new RegExp(`run ${release} accepted by the trainer`));
    await eventOf(release, 'Accepted');

    const pod = await runningWorkerPod(release);
    const jobs = await cluster.batch.listNamespacedJob({
      namespace,
      labelSelector: `${RUN_LABEL}=${release},${BY_TRAINER}`,
    });
    assert.equal(jobs.items.length, 1, 'the trainer created one Job for the run');
    await cluster.core.patchNamespacedPod({
      namespace,
      name: pod,
      body: [
        { op: 'add', path: '/metadata/annotations', value: { [OUTCOME]: 'Succeeded', [EXIT_CODE]: '0' } },
      ],
    });
    await eventOf(release, 'Succeeded');

    const status = JSON.parse(
      await ok(helm(['status', release, '--namespace', namespace, '-o', 'json']), 'status'),
    );
    assert.equal(status.info.status, 'deployed');
    assert.match(status.info.notes, new RegExp(`-l ${RUN_LABEL}=${release}`));
    // The command the NOTES give shows the finished Job.
    const shown = await ok(
      kubectl(['get', 'jobs', '--all-namespaces', '-l', `${RUN_LABEL}=${release}`, '-o', 'json']),
      'kubectl get jobs',
    );
    const job = (JSON.parse(shown) as k8s.V1JobList).items.find(
      (j) => j.metadata?.labels?.['app.kubernetes.io/managed-by'] === 'lvr-trainer',
    )!;
    assert.ok(
      job.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True'),
      'Job Complete',
    );

    const upgrade = await helm([...installArgs(release).map((a) => (a === 'install' ? 'upgrade' : a))]);
    assert.notEqual(upgrade.code, 0);
    assert.match(upgrade.stderr, /a run cannot be changed after submission/);

    await ok(helm(['uninstall', release, '--namespace', namespace, '--timeout', '120s']), 'helm uninstall');
    const cancel = await kubelet.next('cancel');
    assert.equal(cancel.code, 0, cancel.stderr);
    assert.match(cancel.stdout, /already ended \(Succeeded\): nothing to cancel/);
    // Installing the same run id with another spec: the trainer rejects it and the install fails with the reason.
    const again = await helm([...installArgs(release), '--set', 'hyperparameters.maxSteps=10']);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /post-install/);
    const rejected = await kubelet.next('submit');
    assert.equal(rejected.code, 1);
    assert.match(
      rejected.stderr,
      new RegExp(`run ${release} rejected: run id ${release} already exists with a different spec`),
    );
    const failed = JSON.parse(
      await ok(helm(['status', release, '--namespace', namespace, '-o', 'json']), 'status'),
    );
    assert.equal(failed.info.status, 'failed');
  });

  test('uninstalling a release whose run is still active cancels the run', async () => {
    const release = uniqueName('cancel').slice(0, 40);
    await ok(helm(installArgs(release)), 'helm install');
    assert.equal((await kubelet.next('submit')).code, 0);
    await runningWorkerPod(release);

    await ok(helm(['uninstall', release, '--namespace', namespace, '--timeout', '180s']), 'helm uninstall');
    const cancel = await kubelet.next('cancel');
    assert.equal(cancel.code, 0, cancel.stderr + cancel.stdout);
    assert.match(cancel.stdout, new RegExp(`run ${release} cancelled`));
    const cancelled = await eventOf(release, 'Cancelled');
    assert.equal(cancelled.runId, release);
    const releases = JSON.parse(
      await ok(helm(['list', '--namespace', namespace, '-o', 'json']), 'helm list'),
    );
    assert.ok(!releases.some((r: { name: string }) => r.name === release), 'the release is gone');
  });
});
