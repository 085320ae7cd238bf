import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { evaluatorConfigFromEnv } from '../../apps/evaluator/src/config';
import { requireEnv } from '../support/env';
import {
  Manifest as RenderedManifest,
  helm,
  kubectl,
  ok,
  podSpecs,
  restrictedViolations,
  useRestrictedNamespace,
} from './helm';

const chart = path.join(__dirname, '..', '..', 'charts', 'lvr-platform');

function helmSync(args: string[]): string {
  return execFileSync(requireEnv('LVR_HELM_BIN'), args, {
    encoding: 'utf8',
    env: process.env,
    stdio: 'pipe',
  });
}

type Manifest = { kind: string; metadata: { name: string }; spec?: Record<string, unknown> };

function render(extra: string[] = []): Manifest[] {
  const text = helmSync(['template', 'demo', chart, '--namespace', 'lvr', ...extra]);
  return k8s.loadAllYaml(text).filter(Boolean) as Manifest[];
}

const examples = ['keda-scale-to-zero.yaml', 'gpu-api.yaml', 'trial-bundled.yaml'].map((f) =>
  path.join(chart, 'examples', f),
);

async function renderChart(extra: string[] = [], namespace = 'lvr'): Promise<RenderedManifest[]> {
  const text = await ok(
    helm(['template', 'demo', chart, '--namespace', namespace, ...extra]),
    'helm template',
  );
  return JSON.parse(JSON.stringify(k8s.loadAllYaml(text).filter(Boolean))) as RenderedManifest[];
}

function containersOf(manifests: Manifest[]): k8s.V1Container[] {
  return manifests
    .filter((m) => m.kind === 'Deployment')
    .flatMap((m) => (m as unknown as k8s.V1Deployment).spec?.template.spec?.containers ?? []);
}

describe('lvr-platform Helm chart', () => {
  test('lints clean', () => {
    const out = helmSync(['lint', chart, '--strict']);
    assert.match(out, /0 chart\(s\) failed/);
  });

  test('renders the three services with probes and a locked-down security context', () => {
    const manifests = render(['--set', 'api.apiKeysSecret=lvr-api-keys']);
    const deployments = manifests
      .filter((m) => m.kind === 'Deployment')
      .map((m) => m.metadata.name)
      .sort();
    assert.deepEqual(deployments, [
      'demo-lvr-platform-api',
      'demo-lvr-platform-evaluator',
      'demo-lvr-platform-trainer',
    ]);
    for (const container of containersOf(manifests)) {
      assert.equal(container.readinessProbe?.httpGet?.path, '/health/ready', container.name);
      assert.equal(container.livenessProbe?.httpGet?.path, '/health/live', container.name);
      assert.equal(container.securityContext?.allowPrivilegeEscalation, false, container.name);
      assert.equal(container.securityContext?.readOnlyRootFilesystem, true, container.name);
    }
  });

  test('credentials only ever come from Secrets', () => {
    for (const container of containersOf(render(['--set', 'api.apiKeysSecret=lvr-api-keys']))) {
      for (const variable of container.env ?? []) {
        // The trainer passes the Secret's *name* on to training pods, which reference it themselves.
        if (variable.name === 'LVR_TRAINER_S3_SECRET') {
          assert.equal(variable.value, 'lvr-object-store');
          continue;
        }
        if (/KEY|SECRET|PASSWORD|TOKEN/.test(variable.name) && !variable.name.endsWith('_FILE')) {
          assert.equal(
            variable.value,
            undefined,
            `${container.name}: ${variable.name} must come from a Secret`,
          );
          assert.ok(
            variable.valueFrom?.secretKeyRef,
            `${container.name}: ${variable.name} has no secretKeyRef`,
          );
        }
      }
    }
  });

  test('components can be switched off', () => {
    const manifests = render(['--set', 'trainer.enabled=false', '--set', 'evaluator.enabled=false']);
    assert.deepEqual(
      manifests.filter((m) => m.kind === 'Deployment').map((m) => m.metadata.name),
      ['demo-lvr-platform-api'],
    );
    assert.equal(manifests.filter((m) => m.kind === 'Role').length, 0, 'no trainer RBAC without the trainer');
  });

  test('lints clean with every example values file', async () => {
    for (const file of examples) {
      const out = await ok(helm(['lint', chart, '--strict', '-f', file]), `helm lint -f ${file}`);
      assert.match(out, /0 chart\(s\) failed/, file);
    }
  });

  const invalid: [string, RegExp][] = [
    ['privileged.yaml', /\/securityContext\/allowPrivilegeEscalation.*must be false/],
    ['root-user.yaml', /\/podSecurityContext\/runAsNonRoot.*must be true/],
    ['bad-autoscaling.yaml', /\/api\/autoscaling\/mode.*must be one of 'none', 'hpa', 'keda'/],
    ['bad-schedule.yaml', /\/evaluator\/schedules\/0/],
    ['secret-in-values.yaml', /\/objectStore.*'secretKey' not allowed/],
    ['bad-brokers.yaml', /\/kafka\/brokers.*does not match pattern/],
  ];
  for (const [file, message] of invalid) {
    test(`the schema rejects examples/invalid/${file}`, async () => {
      const result = await helm([
        'template',
        'demo',
        chart,
        '-f',
        path.join(chart, 'examples', 'invalid', file),
      ]);
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, message);
    });
  }

  test('every pod of every example runs under the restricted Pod Security profile', async () => {
    for (const file of [...examples, '']) {
      const manifests = await renderChart(file ? ['-f', file] : []);
      const pods = podSpecs(manifests);
      assert.ok(pods.length >= 6, `${file}: deployments and helm test pods rendered`);
      for (const { owner, spec } of pods) assert.deepEqual(restrictedViolations(owner, spec), [], file);
    }
  });

  test('the API scales on CPU with an HPA by default', async () => {
    const manifests = await renderChart();
    const hpa = manifests.find((m) => m.kind === 'HorizontalPodAutoscaler')!;
    assert.equal(
      (hpa.spec as { scaleTargetRef: { name: string } }).scaleTargetRef.name,
      'demo-lvr-platform-api',
    );
    assert.equal((hpa.spec as { minReplicas: number }).minReplicas, 2);
    const api = manifests.find(
      (m) => m.kind === 'Deployment' && m.metadata.name === 'demo-lvr-platform-api',
    )!;
    assert.equal((api.spec as { replicas?: number }).replicas, undefined, 'the HPA owns the replica count');
    assert.equal(manifests.filter((m) => m.kind === 'ScaledObject').length, 0);
  });

  test('the KEDA option scales the API to zero on lvr:num_requests_waiting', async () => {
    const manifests = await renderChart(['-f', path.join(chart, 'examples', 'keda-scale-to-zero.yaml')]);
    assert.equal(
      manifests.filter((m) => m.kind === 'HorizontalPodAutoscaler').length,
      0,
      'KEDA owns the HPA',
    );
    assert.equal(manifests.filter((m) => m.kind === 'PodDisruptionBudget').length, 0, 'no PDB at zero');
    const scaled = manifests.find((m) => m.kind === 'ScaledObject')!;
    const spec = scaled.spec as {
      minReplicaCount: number;
      scaleTargetRef: { name: string };
      triggers: { type: string; metadata: Record<string, string> }[];
    };
    assert.equal(scaled.apiVersion, 'keda.sh/v1alpha1');
    assert.equal(spec.minReplicaCount, 0);
    assert.equal(spec.scaleTargetRef.name, 'demo-lvr-platform-api');
    assert.equal(spec.triggers[0].type, 'prometheus');
    assert.match(
      spec.triggers[0].metadata.query,
      /^sum\(lvr:num_requests_waiting\{namespace="lvr",service="demo-lvr-platform-api"\}\)$/,
    );
    assert.equal(spec.triggers[0].metadata.threshold, '2');
    assert.ok(
      manifests.some((m) => m.kind === 'ServiceMonitor'),
      'the example scrapes the API',
    );
  });

  test('GPU API values request the GPU and tolerate the GPU taint', async () => {
    const manifests = await renderChart(['-f', path.join(chart, 'examples', 'gpu-api.yaml')]);
    const api = manifests.find(
      (m) => m.kind === 'Deployment' && m.metadata.name === 'demo-lvr-platform-api',
    )!;
    const pod = (api.spec as unknown as { template: { spec: k8s.V1PodSpec } }).template.spec;
    assert.equal(pod.containers[0].resources?.limits?.['nvidia.com/gpu'], 1);
    assert.deepEqual(pod.tolerations, [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]);
    const env = Object.fromEntries((pod.containers[0].env ?? []).map((e) => [e.name, e.value]));
    assert.equal(env.LVR_EXECUTION_PROVIDER, 'cuda');
    assert.equal(pod.containers[0].image, 'ghcr.io/lvr-platform/lvr-node-cuda:0.1.0');
    const trainer = manifests.find(
      (m) => m.kind === 'Deployment' && m.metadata.name === 'demo-lvr-platform-trainer',
    )!;
    const trainerPod = (trainer.spec as unknown as { template: { spec: k8s.V1PodSpec } }).template.spec;
    assert.equal(trainerPod.containers[0].image, 'ghcr.io/lvr-platform/lvr-node:0.1.0', 'only the API');
  });

  test('GPU API values: an execution provider in api.env wins once; a digest pins the CUDA image', async () => {
    const manifests = await renderChart([
      '-f',
      path.join(chart, 'examples', 'gpu-api.yaml'),
      '--set',
      'api.env.LVR_EXECUTION_PROVIDER=webgpu',
      '--set',
      `api.gpu.image.digest=sha256:${'a'.repeat(64)}`,
    ]);
    const api = manifests.find(
      (m) => m.kind === 'Deployment' && m.metadata.name === 'demo-lvr-platform-api',
    )!;
    const container = (api.spec as unknown as { template: { spec: k8s.V1PodSpec } }).template.spec
      .containers[0];
    const providers = (container.env ?? []).filter((e) => e.name === 'LVR_EXECUTION_PROVIDER');
    assert.deepEqual(providers, [{ name: 'LVR_EXECUTION_PROVIDER', value: 'webgpu' }]);
    assert.equal(container.image, `ghcr.io/lvr-platform/lvr-node-cuda@sha256:${'a'.repeat(64)}`);
  });

  test('evaluation schedules are rendered to the evaluator configuration; duplicate names are refused', async () => {
    const manifests = await renderChart(['-f', path.join(chart, 'examples', 'trial-bundled.yaml')]);
    const config = manifests.find(
      (m) => m.kind === 'ConfigMap' && m.metadata.name === 'demo-lvr-platform-evaluator',
    )!;
    assert.deepEqual(JSON.parse(config.data!['schedules.json']), [
      {
        name: 'nightly-grounding',
        cron: '0 2 * * *',
        timezone: 'Europe/Paris',
        models: ['lvr-tiny-demo'],
        benchmarks: [{ name: 'synthetic-grounding', split: 'test', limit: 200 }],
        decoding: { steps: [0, 8] },
      },
    ]);
    assert.deepEqual(JSON.parse(config.data!['on-publish.json']), [
      { models: ['lvr-*'], benchmarks: [{ name: 'synthetic-grounding' }] },
    ]);
    const evaluator = containersOf(manifests).find((c) => c.name === 'evaluator')!;
    const env = new Map((evaluator.env ?? []).map((e) => [e.name, e.value]));
    assert.equal(env.get('LVR_EVAL_SCHEDULES_FILE'), '/etc/lvr/evaluator/schedules.json');
    assert.equal(env.get('LVR_EVAL_ON_PUBLISH_FILE'), '/etc/lvr/evaluator/on-publish.json');
    assert.equal(env.get('LVR_EVAL_API_URL'), 'http://demo-lvr-platform-api/v1');
    const twice = { name: 'a', cron: '0 * * * *', models: ['m'], benchmarks: [{ name: 'b' }] };
    const dup = await helm([
      'template',
      'demo',
      chart,
      '--set-json',
      `evaluator.schedules=${JSON.stringify([twice, twice])}`,
    ]);
    assert.notEqual(dup.code, 0);
    assert.match(dup.stderr, /evaluator\.schedules: the name "a" is used twice/);
  });

  test('the evaluator itself accepts the rendered schedules and on-publish rules', async () => {
    const manifests = await renderChart(['-f', path.join(chart, 'examples', 'trial-bundled.yaml')]);
    const config = manifests.find(
      (m) => m.kind === 'ConfigMap' && m.metadata.name === 'demo-lvr-platform-evaluator',
    )!;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lvr-eval-config-'));
    try {
      for (const [file, text] of Object.entries(config.data!)) fs.writeFileSync(path.join(dir, file), text);
      const parsed = evaluatorConfigFromEnv({
        LVR_EVAL_SCHEDULES_FILE: path.join(dir, 'schedules.json'),
        LVR_EVAL_ON_PUBLISH_FILE: path.join(dir, 'on-publish.json'),
      });
      assert.deepEqual(
        parsed.schedules.map((s) => [s.name, s.cron, s.timezone, s.models, s.benchmarks.map((b) => b.name)]),
        [['nightly-grounding', '0 2 * * *', 'Europe/Paris', ['lvr-tiny-demo'], ['synthetic-grounding']]],
      );
      assert.deepEqual(parsed.publishRules[0].models, ['lvr-*']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the trainer may touch only what it creates: Jobs, Pods (read), ConfigMaps, Services, Leases, Events', async () => {
    const manifests = await renderChart();
    const rules = manifests
      .filter((m) => m.kind === 'Role')
      .flatMap((m) => (m as unknown as k8s.V1Role).rules ?? []);
    const granted = new Map<string, Set<string>>();
    for (const rule of rules)
      for (const resource of rule.resources ?? []) {
        const verbs = granted.get(resource) ?? new Set();
        for (const verb of rule.verbs) verbs.add(verb);
        granted.set(resource, verbs);
      }
    assert.deepEqual([...granted.keys()].sort(), [
      'configmaps',
      'events',
      'jobs',
      'leases',
      'pods',
      'pods/log',
      'services',
    ]);
    assert.deepEqual([...granted.get('pods')!].sort(), ['get', 'list', 'watch']);
    assert.ok(!rules.some((r) => r.verbs.includes('*') || r.resources?.includes('*')), 'no wildcards');
    assert.ok(!rules.some((r) => r.resources?.includes('secrets')), 'no Secrets');
  });

  test('network policies: deny by default; clients reach the API; the trainer reaches the API server, Kafka, MinIO', async () => {
    const manifests = await renderChart();
    const policies = new Map(
      manifests
        .filter((m) => m.kind === 'NetworkPolicy')
        .map((m) => [m.metadata.name, m.spec as unknown as k8s.V1NetworkPolicySpec]),
    );
    const deny = policies.get('demo-lvr-platform-default-deny')!;
    assert.deepEqual(deny.podSelector?.matchLabels, { 'app.kubernetes.io/instance': 'demo' });
    assert.deepEqual(deny.policyTypes, ['Ingress', 'Egress']);
    assert.equal(deny.ingress, undefined);
    assert.equal(deny.egress, undefined);
    const api = policies.get('demo-lvr-platform-api')!;
    assert.deepEqual(
      api.ingress?.[0],
      { ports: [{ protocol: 'TCP', port: 'http' }] },
      'any client may call the API',
    );
    const trainerPorts = policies
      .get('demo-lvr-platform-trainer')!
      .egress!.flatMap((e) => (e.ports ?? []).map((p) => p.port));
    for (const port of [53, 9000, 9092, 443, 6443])
      assert.ok(trainerPorts.includes(port), `trainer egress ${port}`);
    const evaluatorPorts = policies
      .get('demo-lvr-platform-evaluator')!
      .egress!.flatMap((e) => (e.ports ?? []).map((p) => p.port));
    assert.ok(evaluatorPorts.includes(8080), 'the evaluator calls the API');
    assert.ok(!evaluatorPorts.includes(443), 'the evaluator does not reach the API server');
  });

  test('bundled Kafka and MinIO are off by default and wired in when on', async () => {
    assert.equal((await renderChart()).filter((m) => m.kind === 'StatefulSet').length, 0);
    const manifests = await renderChart(['-f', path.join(chart, 'examples', 'trial-bundled.yaml')]);
    assert.deepEqual(
      manifests
        .filter((m) => m.kind === 'StatefulSet')
        .map((m) => m.metadata.name)
        .sort(),
      ['demo-lvr-platform-kafka', 'demo-lvr-platform-minio'],
    );
    for (const container of containersOf(manifests)) {
      const env = new Map((container.env ?? []).map((e) => [e.name, e.value]));
      assert.equal(env.get('LVR_KAFKA_BROKERS'), 'demo-lvr-platform-kafka:9092', container.name);
      assert.equal(env.get('LVR_S3_ENDPOINT'), 'http://demo-lvr-platform-minio:9000', container.name);
    }
  });

  test('images: a digest wins over the tag, for the services and for the training Jobs', async () => {
    const digest = 'sha256:' + 'b'.repeat(64);
    const manifests = await renderChart([
      '--set',
      `image.digest=${digest}`,
      '--set',
      `workerImage.tag=1.2.3`,
    ]);
    for (const container of containersOf(manifests))
      assert.equal(container.image, `ghcr.io/lvr-platform/lvr-node@${digest}`);
    const trainer = containersOf(manifests).find((c) => c.name === 'trainer')!;
    assert.equal(
      trainer.env?.find((e) => e.name === 'LVR_TRAINER_IMAGE')?.value,
      'ghcr.io/lvr-platform/lvr-worker:1.2.3',
    );
  });

  describe('against the real API server', () => {
    const namespace = useRestrictedNamespace('chart');

    test('every rendered object passes server-side validation (dry run)', async () => {
      const out = await ok(
        helm([
          'install',
          'demo',
          chart,
          '--namespace',
          namespace.name(),
          '--dry-run=server',
          '--set',
          'api.apiKeysSecret=lvr-api-keys',
        ]),
        'helm install --dry-run=server',
      );
      assert.match(out, /STATUS: pending-install/);
      assert.match(out, /kind: Deployment/);
    });

    test('every example passes server-side validation under restricted Pod Security (CRD kinds aside)', async () => {
      for (const file of examples) {
        const rendered = await ok(
          helm(['template', 'demo', chart, '--namespace', namespace.name(), '-f', file]),
          'helm template',
        );
        // KEDA's and prometheus-operator's CRDs are not in the test cluster; their objects are checked above.
        const text = rendered
          .split(/^---$/m)
          .filter((doc) => !/^kind: (ScaledObject|ServiceMonitor)$/m.test(doc))
          .join('---');
        const applied = await kubectl(
          ['apply', '--dry-run=server', '--namespace', namespace.name(), '-f', '-'],
          text,
        );
        assert.equal(applied.code, 0, `${file}: ${applied.stderr}`);
        assert.doesNotMatch(applied.stderr, /would violate PodSecurity/, file);
      }
    });
  });
});

describe('plain manifests in k8s/', () => {
  const manifest = path.join(__dirname, '..', '..', 'k8s', 'training-namespace.yaml');
  const kubectl = (args: string[]) =>
    execFileSync(requireEnv('LVR_KUBECTL_BIN'), args, { encoding: 'utf8', env: process.env, stdio: 'pipe' });

  after(() => {
    kubectl(['delete', '--ignore-not-found', '--wait=false', '-f', manifest]);
  });

  test('the training namespace manifests apply to the real cluster and take effect', () => {
    const out = kubectl(['apply', '-f', manifest]);
    assert.match(out, /namespace\/lvr-training (created|unchanged)/);
    assert.match(out, /resourcequota\/gpu-quota (created|unchanged)/);
    assert.match(out, /priorityclass.scheduling.k8s.io\/lvr-training-preemptible (created|unchanged)/);
    const quota = JSON.parse(
      kubectl(['get', 'resourcequota', 'gpu-quota', '-n', 'lvr-training', '-o', 'json']),
    );
    assert.equal(quota.spec.hard['requests.nvidia.com/gpu'], '16');
  });
});
