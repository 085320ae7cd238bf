// `npm run bench -- trainer [--counts 10,100]`
//
// The trainer (kubernetes executor, a real process) against the stack's API server, Job controller, scheduler,
// kwok nodes and Kafka. For each count N (the first, 10, is the baseline of the same run): N training requests are
// sent at once; measured are the time until all N Jobs exist (checked to exist exactly once each: one ADDED watch
// event per run, one Job per run id) and the lag from a pod phase change seen on a watch (Running, then Succeeded
// after kwok completes the pods) to the matching run event on Kafka, p50/p99. Prints a final `BENCH {json}` line.
import * as k8s from '@kubernetes/client-node';
import { connect, createNamespace } from '../../tests/k8s/cluster';
import { releaseNamespace } from '../../tests/trainer/pods';
import { uniqueName } from '../../tests/support/env';
import {
  EventRecorder,
  startTrainerProcess,
  suiteTopics,
  topicEnv,
  trainingRequest,
} from '../../tests/trainer/harness';
import { testKafka } from '../../tests/support/kafka';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

const counts = arg('counts', '10,100').split(',').map(Number);
const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;

function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

interface Result {
  requests: number;
  allJobsMs: number;
  jobsPerSecond: number;
  runningLagP50Ms: number;
  runningLagP99Ms: number;
  succeededLagP50Ms: number;
  succeededLagP99Ms: number;
  lagSamples: number;
}

async function until(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A watch that is re-established whenever the server ends it, so no phase change goes unseen. */
async function keepWatching<T>(
  kc: k8s.KubeConfig,
  path: string,
  onEvent: (type: string, object: T) => void,
): Promise<{ abort(): void }> {
  let stopped = false;
  let current: AbortController | undefined;
  const start = async (): Promise<void> => {
    current = await new k8s.Watch(kc).watch(path, {}, onEvent, () => {
      if (!stopped) setTimeout(() => void start(), 200);
    });
  };
  await start();
  return {
    abort: () => {
      stopped = true;
      current?.abort();
    },
  };
}

async function measure(count: number): Promise<Result> {
  const cluster = connect();
  const namespace = await createNamespace(cluster, `bench-trainer-${count}`);
  const topics = await suiteTopics(`bench-trainer-${count}`);
  const events = await EventRecorder.start(topics.events);
  const trainer = await startTrainerProcess({
    ...topicEnv(topics),
    LVR_TRAINER_EXECUTOR: 'kubernetes',
    LVR_TRAINER_NAMESPACE: namespace,
    TRAINER_GROUP_ID: uniqueName('bench-trainer'),
    LVR_TRAINER_CPU_REQUEST: '10m',
    LVR_TRAINER_MEMORY_REQUEST: '16Mi',
    LVR_TRAINER_MEMORY_LIMIT: '64Mi',
  });
  const jobAdded = new Map<string, number[]>();
  const seenJobs = new Set<string>();
  const podSeen = new Map<string, { running?: number; succeeded?: number; name: string }>();
  const jobWatch = await keepWatching(
    cluster.kc,
    `/apis/batch/v1/namespaces/${namespace}/jobs`,
    (type: string, job: k8s.V1Job) => {
      const runId = job.metadata?.labels?.['lvr.dev/run-id'];
      // A re-established watch replays existing objects as ADDED: count each Job uid once.
      if (type === 'ADDED' && runId && !seenJobs.has(job.metadata!.uid!)) {
        seenJobs.add(job.metadata!.uid!);
        jobAdded.set(runId, [...(jobAdded.get(runId) ?? []), Date.now()]);
      }
    },
  );
  const podWatch = await keepWatching(
    cluster.kc,
    `/api/v1/namespaces/${namespace}/pods`,
    (_type: string, pod: k8s.V1Pod) => {
      const runId = pod.metadata?.labels?.['lvr.dev/run-id'];
      if (!runId) return;
      const seen = podSeen.get(runId) ?? { name: pod.metadata!.name! };
      if (pod.status?.phase === 'Running') seen.running ??= Date.now();
      if (pod.status?.phase === 'Succeeded') seen.succeeded ??= Date.now();
      podSeen.set(runId, seen);
    },
  );
  try {
    const runIds = Array.from({ length: count }, (_, i) => uniqueName(`b${i}`));
    const producer = testKafka().producer();
    await producer.connect();
    const started = Date.now();
    await producer.send({
      topic: topics.requests,
      messages: runIds.map((runId) => ({
        key: runId,
        value: JSON.stringify(trainingRequest(runId, { resources: { gpusPerNode: 0 } })),
      })),
    });
    await producer.disconnect();
    await until(`${count} Jobs`, () => runIds.every((id) => jobAdded.has(id)), 300_000);
    const allJobsMs = Math.max(...runIds.map((id) => jobAdded.get(id)![0])) - started;
    const listed = await cluster.batch.listNamespacedJob({ namespace });
    if (listed.items.length !== count) throw new Error(`${listed.items.length} Jobs for ${count} runs`);
    if ([...jobAdded.values()].some((times) => times.length !== 1))
      throw new Error('a Job was created twice');

    const ran = () =>
      runIds.filter((id) => events.of(id).some((e) => e.type === 'Running') && podSeen.get(id)?.running);
    await until('Running events', () => ran().length === count, 300_000).catch(() => undefined);
    const runningIds = ran();
    // kwok completes the pods that run; their Succeeded phase change then travels to Kafka.
    const patch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
    await Promise.all(
      runningIds.map((id) =>
        cluster.core.patchNamespacedPod(
          {
            namespace,
            name: podSeen.get(id)!.name,
            body: { metadata: { annotations: { 'kwok.lvr.dev/outcome': 'Succeeded' } } },
          },
          patch,
        ),
      ),
    );
    const done = () =>
      runningIds.filter(
        (id) => events.of(id).some((e) => e.type === 'Succeeded') && podSeen.get(id)?.succeeded,
      );
    await until('Succeeded events', () => done().length === runningIds.length, 120_000).catch(
      () => undefined,
    );
    process.stderr.write(
      `[bench] ${count}: ${runningIds.length} ran, ${done().length} succeeded; pods seen succeeded: ${[...podSeen.values()].filter((p) => p.succeeded).length}\n`,
    );
    const lag = (id: string, type: string, at: number | undefined) => {
      const event = events.of(id).find((e) => e.type === type);
      return event && at ? event.receivedAt - at : undefined;
    };
    const runningLags = runningIds
      .map((id) => lag(id, 'Running', podSeen.get(id)!.running)!)
      .filter((x) => x !== undefined);
    const succeededLags = done()
      .map((id) => lag(id, 'Succeeded', podSeen.get(id)!.succeeded)!)
      .filter((x) => x !== undefined);
    return {
      requests: count,
      allJobsMs,
      jobsPerSecond: round((count * 1000) / allJobsMs),
      runningLagP50Ms: percentile(runningLags, 50),
      runningLagP99Ms: percentile(runningLags, 99),
      succeededLagP50Ms: percentile(succeededLags, 50),
      succeededLagP99Ms: percentile(succeededLags, 99),
      lagSamples: runningLags.length + succeededLags.length,
    };
  } finally {
    jobWatch.abort();
    podWatch.abort();
    await trainer.stop();
    await events.stop();
    await releaseNamespace(cluster, namespace);
  }
}

async function main(): Promise<void> {
  const results: Result[] = [];
  for (const count of counts) {
    const result = await measure(count);
    results.push(result);
    process.stdout.write(`${JSON.stringify(result)}\n`);
  }
  const [baseline, ...rest] = results;
  const load = rest.at(-1) ?? baseline;
  process.stdout.write(
    `BENCH ${JSON.stringify({
      bench: 'trainer',
      baseline,
      load,
      ratios: {
        allJobsTime: round(load.allJobsMs / baseline.allJobsMs, 2),
        requests: load.requests / baseline.requests,
        perJobTime: round(load.allJobsMs / load.requests / (baseline.allJobsMs / baseline.requests), 2),
        runningLagP50: round(load.runningLagP50Ms / baseline.runningLagP50Ms, 2),
        runningLagP99: round(load.runningLagP99Ms / baseline.runningLagP99Ms, 2),
      },
    })}\n`,
  );
}

main().catch((error: Error) => {
  process.stderr.write(`${error.stack ?? error.message}\n`);
  process.exit(1);
});
