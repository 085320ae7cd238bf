// The platform chart installed into the test cluster under restricted Pod Security: its Deployments create running
// pods, the HPA scales the API to its minimum, and `helm test` passes. kwok runs no containers, so the `helm test`
// pods run on this machine (local-kubelet.ts) against real API, trainer and evaluator processes standing in for the
// chart's Services.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { ALL_TOPICS } from '@lvr/contracts';
import { requireEnv, uniqueName } from '../support/env';
import { ensureTopics } from '../support/kafka';
import { type Cluster, connect, deleteNamespace, watchUntil } from '../k8s/cluster';
import { chartDir, createRestrictedNamespace, helm, ok } from '../charts/helm';
import { LocalKubelet } from './local-kubelet';
import { Service, repoRoot, startService } from './processes';

const chart = chartDir('lvr-platform');
const RELEASE = 'demo';

describe('lvr-platform installed into the cluster', () => {
  let cluster: Cluster;
  let apps: k8s.AppsV1Api;
  let namespace: string;
  const services = new Map<string, Service>();

  before(async () => {
    cluster = connect();
    apps = cluster.kc.makeApiClient(k8s.AppsV1Api);
    namespace = uniqueName('platform');
    await createRestrictedNamespace(cluster.core, namespace);
    const account = watchUntil<k8s.V1ServiceAccount>(
      cluster,
      `/api/v1/namespaces/${namespace}/serviceaccounts`,
      {},
      (_t, a) => a.metadata?.name === 'default',
      'default service account',
    );
    await account.done;
    await cluster.core.createNamespacedSecret({
      namespace,
      body: {
        metadata: { name: 'lvr-object-store' },
        stringData: { accessKey: 'test', secretKey: uniqueName('s') },
      },
    });
  });

  after(async () => {
    for (const service of services.values()) await service.stop();
    if (cluster && namespace) await deleteNamespace(cluster, namespace);
  });

  test('install: every Deployment creates running pods, the HPA holds the API at its minimum', async () => {
    const out = await ok(
      helm([
        'install',
        RELEASE,
        chart,
        '--namespace',
        namespace,
        '--set',
        'image.tag=test',
        '--set',
        'api.env.LVR_ALLOW_UNAUTHENTICATED=1',
        '--wait',
        '--timeout',
        '180s',
      ]),
      'helm install',
    );
    assert.match(out, /STATUS: deployed/);
    assert.match(out, /helm test demo/);
    for (const component of ['api', 'trainer', 'evaluator']) {
      const deployment = await apps.readNamespacedDeployment({
        namespace,
        name: `demo-lvr-platform-${component}`,
      });
      assert.ok((deployment.status?.readyReplicas ?? 0) >= 1, `${component} has a ready replica`);
      const pods = await cluster.core.listNamespacedPod({
        namespace,
        labelSelector: `app.kubernetes.io/instance=${RELEASE},app.kubernetes.io/component=${component}`,
      });
      assert.ok(pods.items.length >= 1, `${component} pods exist`);
      for (const pod of pods.items) {
        assert.equal(pod.status?.phase, 'Running', pod.metadata?.name);
        assert.equal(pod.spec?.securityContext?.runAsNonRoot, true);
        assert.equal(pod.spec?.containers[0].securityContext?.readOnlyRootFilesystem, true);
      }
    }
    // The real HPA controller raises the API to minReplicas (2) although no metrics server exists.
    const scaled = watchUntil<k8s.V1Deployment>(
      cluster,
      `/apis/apps/v1/namespaces/${namespace}/deployments`,
      { fieldSelector: 'metadata.name=demo-lvr-platform-api' },
      (_t, d) => (d.spec?.replicas ?? 0) >= 2,
      'the HPA to scale the API to 2 replicas',
      120_000,
    );
    await scaled.done;
  });

  test('helm test: each service is ready and the API lists its models', async () => {
    await ensureTopics([...ALL_TOPICS]);
    const kafka = { LVR_KAFKA_BROKERS: requireEnv('LVR_KAFKA_BROKERS') };
    const demo = path.join(repoRoot, 'models', 'lvr-tiny-demo');
    services.set(
      'api',
      // Only the demo bundle: no hot-loading of the models other suites publish on the shared Kafka and MinIO.
      await startService('apps/api/src/main.ts', 'PORT', {
        HOST: '127.0.0.1',
        LVR_MODELS: `lvr-tiny-demo=${demo}`,
        LVR_KAFKA_BROKERS: '',
        LVR_S3_ENDPOINT: '',
      }),
    );
    services.set(
      'trainer',
      await startService('apps/trainer/src/main.ts', 'TRAINER_PORT', {
        ...kafka,
        TRAINER_GROUP_ID: uniqueName('t'),
      }),
    );
    services.set(
      'evaluator',
      await startService('apps/evaluator/src/main.ts', 'EVALUATOR_PORT', {
        ...kafka,
        EVALUATOR_GROUP_ID: uniqueName('e'),
      }),
    );
    // The chart's Service URLs (http://demo-lvr-platform-<component>) lead to the local processes.
    const kubelet = new LocalKubelet(cluster.kc, namespace, `lvr.dev/helm-test=${RELEASE}`, (name, value) => {
      const match = /^http:\/\/demo-lvr-platform-(api|trainer|evaluator)$/.exec(value);
      return name === 'LVR_TEST_URL' && match ? services.get(match[1])!.url : value;
    });
    await kubelet.start();
    try {
      const out = await ok(
        helm(['test', RELEASE, '--namespace', namespace, '--timeout', '180s']),
        'helm test',
      );
      for (const component of ['api', 'trainer', 'evaluator'])
        assert.match(
          out,
          new RegExp(`TEST SUITE:\\s+demo-lvr-platform-test-${component}[\\s\\S]*?Phase:\\s+Succeeded`),
        );
      const api = kubelet.runs.find((r) => r.pod === 'demo-lvr-platform-test-api')!;
      assert.match(api.stdout, /^\/v1\/models 200 models: lvr-tiny-demo$/m);
      assert.equal(kubelet.runs.length, 3);
    } finally {
      kubelet.stop();
    }
  });

  test('uninstall removes the release', async () => {
    await ok(
      helm(['uninstall', RELEASE, '--namespace', namespace, '--wait', '--timeout', '120s']),
      'helm uninstall',
    );
    const releases = JSON.parse(
      await ok(helm(['list', '--namespace', namespace, '-o', 'json']), 'helm list'),
    );
    assert.deepEqual(releases, []);
  });
});
