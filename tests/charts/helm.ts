// Helm and kubectl from the test stack (LVR_HELM_BIN, LVR_KUBECTL_BIN), with their caches kept out of $HOME.
import { after, before } from 'node:test';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { requireEnv, uniqueName } from '../support/env';

export const repoRoot = path.join(__dirname, '..', '..');
export const chartDir = (name: string) => path.join(repoRoot, 'charts', name);

export interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

let home: string | undefined;
function toolEnv(): NodeJS.ProcessEnv {
  home ??= fs.mkdtempSync(path.join(os.tmpdir(), 'lvr-helm-'));
  return {
    ...process.env,
    HELM_CACHE_HOME: path.join(home, 'cache'),
    HELM_CONFIG_HOME: path.join(home, 'config'),
    HELM_DATA_HOME: path.join(home, 'data'),
    KUBECACHEDIR: path.join(home, 'kube-cache'),
  };
}

export function run(bin: string, args: string[], input?: string): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { env: toolEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

export const helm = (args: string[]) => run(requireEnv('LVR_HELM_BIN'), args);
export const kubectl = (args: string[], input?: string) => run(requireEnv('LVR_KUBECTL_BIN'), args, input);

/** Runs and returns stdout, failing with the tool's own output otherwise. */
export async function ok(result: Promise<Result>, what: string): Promise<string> {
  const r = await result;
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}):\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
  [key: string]: unknown;
}

export async function render(chart: string, release: string, args: string[] = []): Promise<Manifest[]> {
  const text = await ok(
    helm(['template', release, chartDir(chart), '--namespace', 'lvr', ...args]),
    'helm template',
  );
  return JSON.parse(JSON.stringify(k8s.loadAllYaml(text).filter(Boolean))) as Manifest[];
}

/** The pod specs of every workload and bare pod in a rendering (Deployments, StatefulSets, Jobs, Pods). */
export function podSpecs(manifests: Manifest[]): { owner: string; spec: k8s.V1PodSpec }[] {
  const out: { owner: string; spec: k8s.V1PodSpec }[] = [];
  for (const m of manifests) {
    const owner = `${m.kind}/${m.metadata.name}`;
    if (m.kind === 'Pod') out.push({ owner, spec: m.spec as unknown as k8s.V1PodSpec });
    else if (['Deployment', 'StatefulSet', 'Job'].includes(m.kind))
      out.push({ owner, spec: (m.spec as unknown as { template: { spec: k8s.V1PodSpec } }).template.spec });
  }
  return out;
}

/** The fields of the restricted Pod Security profile a pod spec must carry (the API server enforces the rest). */
export function restrictedViolations(owner: string, spec: k8s.V1PodSpec): string[] {
  const problems: string[] = [];
  const pod = spec.securityContext ?? {};
  for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
    const sc = c.securityContext ?? {};
    const where = `${owner} container ${c.name}`;
    if (sc.allowPrivilegeEscalation !== false)
      problems.push(`${where}: allowPrivilegeEscalation is not false`);
    if (!sc.capabilities?.drop?.includes('ALL')) problems.push(`${where}: capabilities do not drop ALL`);
    if (sc.runAsNonRoot !== true && pod.runAsNonRoot !== true)
      problems.push(`${where}: runAsNonRoot is not set`);
    const seccomp = sc.seccompProfile?.type ?? pod.seccompProfile?.type;
    if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost')
      problems.push(`${where}: no seccomp profile`);
  }
  return problems;
}

/** Creates a namespace that enforces the `restricted` Pod Security Standard: what every chart's pods must pass. */
export async function createRestrictedNamespace(core: k8s.CoreV1Api, name: string): Promise<void> {
  await core.createNamespace({
    body: {
      metadata: {
        name,
        labels: {
          'pod-security.kubernetes.io/enforce': 'restricted',
          'pod-security.kubernetes.io/warn': 'restricted',
        },
      },
    },
  });
}

/** Registers hooks that create a fresh restricted namespace (prefix + unique suffix) before the suite's tests and
 * delete it after them; `name()` is the namespace while the tests run. */
export function useRestrictedNamespace(prefix: string): { name: () => string } {
  let namespace = '';
  let core: k8s.CoreV1Api | undefined;
  before(async () => {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(requireEnv('KUBECONFIG'));
    core = kc.makeApiClient(k8s.CoreV1Api);
    namespace = uniqueName(prefix);
    await createRestrictedNamespace(core, namespace);
  });
  after(async () => {
    if (namespace && core) await core.deleteNamespace({ name: namespace }).catch(() => undefined);
  });
  return { name: () => namespace };
}
