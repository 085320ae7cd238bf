// A Kafka broker restart during a run loses nothing: the trainer keeps watching the cluster, retries its publishes
// until the broker is back, and every transition still arrives once, in order. Uses a private broker, so the shared
// one that other suites use is never stopped.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { type Cluster, OUTCOME, connect, createNamespace } from '../k8s/cluster';
import { uniqueName } from '../support/env';
import {
  EventRecorder,
  getJson,
  produce,
  runViewInPhase,
  startTrainerProcess,
  type TrainerProcess,
  trainingRequest,
} from './harness';
import { patchPod, releaseNamespace, runPods } from './pods';
import { PrivateKafka } from './private-kafka';

describe('trainer: Kafka broker restart during a run', () => {
  let cluster: Cluster;
  let namespace: string;
  let kafka: PrivateKafka;
  let trainer: TrainerProcess;
  let events: EventRecorder;
  const topics = {
    requests: 'lvr.training.requests',
    commands: 'lvr.training.commands',
    events: 'lvr.training.events',
    workerEvents: 'lvr.training.worker-events',
  };

  before(async () => {
    cluster = connect();
    namespace = await createNamespace(cluster, 'trainer-broker');
    kafka = await PrivateKafka.create();
    await kafka.start();
    const admin = new Kafka({ clientId: 'it', brokers: [kafka.brokers], logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    await admin.createTopics({
      topics: Object.values(topics).map((topic) => ({ topic })),
      waitForLeaders: true,
    });
    await admin.disconnect();
    events = await EventRecorder.start(topics.events, kafka.brokers);
    trainer = await startTrainerProcess({
      LVR_KAFKA_BROKERS: kafka.brokers,
      LVR_TRAINER_EXECUTOR: 'kubernetes',
      LVR_TRAINER_NAMESPACE: namespace,
      TRAINER_GROUP_ID: uniqueName('trainer'),
      LVR_TRAINER_RESYNC_SECONDS: '2',
      LVR_TRAINER_CPU_REQUEST: '100m',
      LVR_TRAINER_MEMORY_REQUEST: '256Mi',
      LVR_TRAINER_MEMORY_LIMIT: '1Gi',
    });
  });

  after(async () => {
    await trainer?.stop('SIGKILL');
    await events?.stop().catch(() => undefined);
    await kafka?.destroy();
    if (cluster && namespace) await releaseNamespace(cluster, namespace);
  });

  it('finishes the run and reports every transition once after the broker comes back', async () => {
    const runId = uniqueName('broker');
    await produce(topics.requests, runId, trainingRequest(runId), kafka.brokers);
    await events.next(runId, 'Running');

    await kafka.stop();
    const [pod] = await runPods(cluster, namespace, runId);
    await patchPod(cluster, namespace, pod.metadata!.name!, { [OUTCOME]: 'Succeeded' });
    // The run ends while Kafka is down: the record says so, the event waits for the broker.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const view = await getJson<{ phase: string; workload?: { phase: string } }>(
        `${trainer.url}/v1/runs/${runId}`,
      );
      if (view.body.workload?.phase === 'Succeeded') break;
      assert.ok(Date.now() < deadline, 'the trainer sees the Job complete while Kafka is down');
      await new Promise((r) => setTimeout(r, 500));
    }
    await kafka.start();

    await events.next(runId, 'Succeeded', 180_000).catch((error: Error) => {
      throw new Error(
        `${error.message}\ntrainer output (last 4000 characters):\n${trainer.output().slice(-4000)}`,
      );
    });
    const seen = new Set<string>();
    const distinct = events.of(runId).filter((e) => !seen.has(e.id) && Boolean(seen.add(e.id)));
    assert.deepEqual(
      distinct.map((e) => e.type),
      ['Accepted', 'Scheduled', 'Running', 'Succeeded'],
    );
    assert.equal((await runViewInPhase(trainer.url, runId, 'Succeeded')).phase, 'Succeeded');
  });
});
