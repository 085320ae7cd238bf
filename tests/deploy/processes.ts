// Real service processes and CLIs for the deployment tests: started from the sources with @swc-node/register, on
// free ports, stopped by pid.
import { ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';

export const repoRoot = path.join(__dirname, '..', '..');

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

export interface Service {
  url: string;
  child: ChildProcess;
  log(): string;
  stop(): Promise<void>;
}

/** Starts `node -r @swc-node/register ENTRY` and waits until GET /health/ready answers 200. */
export async function startService(
  entry: string,
  portVariable: string,
  env: NodeJS.ProcessEnv,
  timeoutMs = 90_000,
): Promise<Service> {
  const port = await freePort();
  const child = spawn(process.execPath, ['-r', '@swc-node/register', path.join(repoRoot, entry)], {
    cwd: repoRoot,
    env: { ...process.env, ...env, [portVariable]: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const url = `http://127.0.0.1:${port}`;
  const service: Service = {
    url,
    child,
    log: () => output,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${entry} exited with ${child.exitCode}:\n${output}`);
    const ready = await fetch(`${url}/health/ready`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ready) return service;
    await new Promise((r) => setTimeout(r, 300));
  }
  await service.stop();
  throw new Error(`${entry} was not ready within ${timeoutMs / 1000}s:\n${output}`);
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a TypeScript CLI to completion. */
export function runCli(entry: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return runNode(['-r', '@swc-node/register', path.join(repoRoot, entry), ...args], env);
}

/** Runs node with these arguments to completion. */
export function runNode(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: repoRoot,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
