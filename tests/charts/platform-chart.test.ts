import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { requireEnv, uniqueName } from '../support/env';

const chart = path.join(__dirname, '..', '..', 'charts', 'lvr-platform');

function helm(args: string[]): string {
  return execFileSync(requireEnv('LVR_HELM_BIN'), args, {
    encoding: 'utf8',
    env: process.env,
    stdio: 'pipe',
  });
}

type Manifest = { kind: string; metadata: { name: string }; spec?: Record<string, unknown> };

function render(extra: string[] = []): Manifest[] {
  const text = helm(['template', 'demo', chart, '--namespace', 'lvr', ...extra]);
  return k8s.loadAllYaml(text).filter(Boolean) as Manifest[];
}

function containersOf(manifests: Manifest[]): k8s.V1Container[] {
  return manifests
    .filter((m) => m.kind === 'Deployment')
    .flatMap((m) => (m as unknown as k8s.V1Deployment).spec?.template.spec?.containers ?? []);
}

describe('lvr-platform Helm chart', () => {
  test('lints clean', () => {
    const out = helm(['lint', chart, '--strict']);
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

  describe('against the real API server', () => {
    let namespace: string;
    let core: k8s.CoreV1Api;

    before(async () => {
      const kc = new k8s.KubeConfig();
      kc.loadFromFile(requireEnv('KUBECONFIG'));
      core = kc.makeApiClient(k8s.CoreV1Api);
      namespace = uniqueName('chart');
      await core.createNamespace({ body: { metadata: { name: namespace } } });
    });

    after(async () => {
      if (namespace) await core.deleteNamespace({ name: namespace }).catch(() => undefined);
    });

    test('every rendered object passes server-side validation (dry run)', () => {
      const out = helm([
        'install',
        'demo',
        chart,
        '--namespace',
        namespace,
        '--dry-run=server',
        '--set',
        'api.apiKeysSecret=lvr-api-keys',
      ]);
      assert.match(out, /STATUS: pending-install/);
      assert.match(out, /kind: Deployment/);
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
