// kwok nodes run no containers, so for the pods our charts run to completion (the training-run hooks, the platform's
// `helm test` pods) this plays the kubelet: it runs the container's command on this machine (the image's
// `node dist/<x>.js` is the source `<x>.ts`; `node -e SCRIPT` runs as is) with the pod's environment (service URLs
// mapped to local processes by `rewriteEnv`) and its ConfigMap volumes as files, then reports the exit code through
// kwok's outcome annotations (infra/k8s/kwok-stages.yaml), so the Job or Pod, and Helm waiting on it, see the real
// result.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { CliResult, runCli, runNode } from './processes';

export const OUTCOME = 'kwok.lvr.dev/outcome';
export const EXIT_CODE = 'kwok.lvr.dev/exit-code';

export interface HookRun extends CliResult {
  pod: string;
  component: string;
  args: string[];
}

export class LocalKubelet {
  readonly runs: HookRun[] = [];
  private readonly handled = new Set<string>();
  private readonly returned = new Set<HookRun>();
  private readonly core: k8s.CoreV1Api;
  private controller?: AbortController;
  private readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lvr-hook-'));
  private readonly listeners: ((run: HookRun) => void)[] = [];
  private error?: Error;

  constructor(
    private readonly kc: k8s.KubeConfig,
    private readonly namespace: string,
    private readonly selector: string,
    private readonly rewriteEnv: (name: string, value: string) => string = (_name, value) => value,
  ) {
    this.core = kc.makeApiClient(k8s.CoreV1Api);
  }

  async start(): Promise<void> {
    this.controller = await new k8s.Watch(this.kc).watch(
      `/api/v1/namespaces/${this.namespace}/pods`,
      { labelSelector: this.selector },
      (type: string, pod: k8s.V1Pod) => {
        const name = pod.metadata?.name;
        if (type === 'DELETED' || !name || this.handled.has(name) || pod.status?.phase !== 'Running') return;
        this.handled.add(name);
        this.execute(pod).catch((error: Error) => (this.error = error));
      },
      () => undefined,
    );
  }

  /** Resolves with the oldest finished hook run of `component` (submit or cancel) not returned before. */
  next(component: string): Promise<HookRun> {
    const done = this.runs.find((r) => r.component === component && !this.returned.has(r));
    if (done) {
      this.returned.add(done);
      return Promise.resolve(done);
    }
    return new Promise((resolve) => {
      const listener = (run: HookRun) => {
        if (run.component !== component) return;
        this.listeners.splice(this.listeners.indexOf(listener), 1);
        this.returned.add(run);
        resolve(run);
      };
      this.listeners.push(listener);
    });
  }

  stop(): void {
    this.controller?.abort();
    fs.rmSync(this.dir, { recursive: true, force: true });
    if (this.error) throw this.error;
  }

  private async execute(pod: k8s.V1Pod): Promise<void> {
    const container = pod.spec!.containers[0];
    const [program, script, ...rest] = container.args ?? [];
    const inline = program === 'node' && script === '-e';
    if (program !== 'node' || !(inline || (script?.startsWith('dist/') && script.endsWith('.js'))))
      throw new Error(`pod ${pod.metadata!.name} runs ${container.args?.join(' ')}, not a node entry point`);
    const env: NodeJS.ProcessEnv = {};
    for (const variable of container.env ?? []) {
      if (variable.value === undefined) throw new Error(`pod env ${variable.name} is not a plain value`);
      env[variable.name] = this.rewriteEnv(variable.name, variable.value);
    }
    env.LVR_TERMINATION_LOG = path.join(this.dir, `${pod.metadata!.name}.termination-log`);
    const mounts = await this.mountConfigMaps(pod, container);
    const args = rest.map((arg) => {
      for (const [mountPath, local] of mounts)
        if (arg.startsWith(`${mountPath}/`)) return local + arg.slice(mountPath.length);
      return arg;
    });
    const result = inline
      ? await runNode(['-e', ...args], env)
      : await runCli(script.slice('dist/'.length).replace(/\.js$/, '.ts'), args, env);
    const component = pod.metadata!.labels?.['app.kubernetes.io/component'] ?? 'unknown';
    const run: HookRun = { ...result, pod: pod.metadata!.name!, component, args: container.args ?? [] };
    await this.core.patchNamespacedPod({
      namespace: this.namespace,
      name: pod.metadata!.name!,
      body: [
        {
          op: 'add',
          path: '/metadata/annotations',
          value: {
            ...(pod.metadata!.annotations ?? {}),
            [OUTCOME]: result.code === 0 ? 'Succeeded' : 'Failed',
            [EXIT_CODE]: String(result.code ?? 1),
          },
        },
      ],
    });
    this.runs.push(run);
    for (const listener of [...this.listeners]) listener(run);
  }

  private async mountConfigMaps(pod: k8s.V1Pod, container: k8s.V1Container): Promise<Map<string, string>> {
    const mounts = new Map<string, string>();
    for (const mount of container.volumeMounts ?? []) {
      const volume = pod.spec!.volumes?.find((v) => v.name === mount.name);
      if (!volume?.configMap) continue;
      const configMap = await this.core.readNamespacedConfigMap({
        namespace: this.namespace,
        name: volume.configMap.name!,
      });
      const local = path.join(this.dir, pod.metadata!.name!, mount.name);
      fs.mkdirSync(local, { recursive: true });
      for (const [file, content] of Object.entries(configMap.data ?? {}))
        fs.writeFileSync(path.join(local, file), content);
      mounts.set(mount.mountPath, local);
    }
    return mounts;
  }
}
