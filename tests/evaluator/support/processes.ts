import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { startServer, type ServerProcess } from '../../../apps/api/test/support/server-process';

export const REPO_ROOT = path.resolve(__dirname, '../../..');
export const DEMO_BUNDLE = path.join(REPO_ROOT, 'models', 'lvr-tiny-demo');

/** A real API process serving the demo bundle on a random port; `model` is the id clients use. */
export async function startDemoApi(model: string, env: Record<string, string> = {}): Promise<ServerProcess> {
  return startServer({ LVR_MODELS: `${model}=${DEMO_BUNDLE}`, LVR_LOG_LEVEL: 'info', ...env });
}

export interface EvaluatorProcess {
  child: ChildProcess;
  url: string;
  output(): string;
  exited: Promise<number | null>;
  stop(): Promise<number | null>;
  kill9(): Promise<number | null>;
}

/** `apps/evaluator/src/main.ts` as its own process on a random port, ready once its consumer joined the group. */
export async function startEvaluatorProcess(env: Record<string, string>): Promise<EvaluatorProcess> {
  const child = spawn(process.execPath, ['-r', '@swc-node/register', 'apps/evaluator/src/main.ts'], {
    cwd: REPO_ROOT,
    env: { ...process.env, EVALUATOR_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : null))),
  );
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`evaluator did not start:\n${out.slice(-3000)}`)),
      90_000,
    );
    const onData = (): void => {
      const m = /"msg":"listening","url":"([^"]+)"/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout!.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`evaluator exited (${code}):\n${out.slice(-3000)}`));
    });
  });
  const deadline = Date.now() + 90_000;
  for (;;) {
    const res = await fetch(`${url}/health/ready`).catch(() => undefined);
    if (res?.status === 200) break;
    if (Date.now() > deadline) throw new Error(`evaluator never became ready:\n${out.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    child,
    url,
    output: () => out,
    exited,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
    kill9: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      return exited;
    },
  };
}
