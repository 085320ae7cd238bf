import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Logger } from '@nestjs/common';
import type { TrainingRequest } from '@lvr/contracts';
import { EXIT_INVALID, type PodFailure, type WorkloadPhase, type WorkloadStatus } from '@lvr/k8s';
import type { Executor, WorkloadListener } from '../executor';
import type { RunRecord } from '../../runs/run-record';
import { FileRunStore } from './file-store';

export interface LocalExecutorOptions {
  stateDir: string;
  python: string;
  pythonPath: string;
  workerArgs: string[];
  /** Environment of the worker: Kafka brokers, the worker event topic, S3 settings. */
  workerEnv: Record<string, string>;
  backoffLimit: number;
  /** How long a stopped worker gets to save a checkpoint before it is killed. */
  stopGraceMs?: number;
}

interface Attempts {
  child?: ChildProcess;
  phase: WorkloadPhase;
  failures: PodFailure[];
  reason?: string;
  exitCode?: number;
  stopping: boolean;
}

/**
 * Runs the worker as a child process on this machine (`python -m lvr <stage> --spec run.json`), with the same
 * lifecycle as a Job: exit 0 ends the run, 78 fails it, anything else is retried (the worker resumes from its newest
 * checkpoint) until `backoffLimit` retries are spent. The worker's stdout events tell when training runs.
 */
export class LocalExecutor implements Executor {
  readonly kind = 'local' as const;
  readonly store: FileRunStore;
  private readonly logger = new Logger(LocalExecutor.name);
  private readonly runs = new Map<string, Attempts>();
  private listener: WorkloadListener = () => undefined;

  constructor(private readonly options: LocalExecutorOptions) {
    this.store = new FileRunStore(path.join(options.stateDir, 'runs'));
  }

  async infeasible(request: TrainingRequest): Promise<string | undefined> {
    if ((request.resources.nodes ?? 1) > 1) return 'multi-node runs need the kubernetes executor';
    return undefined;
  }

  async start(record: RunRecord): Promise<void> {
    const current = this.runs.get(record.runId);
    if (current && (current.child || current.phase === 'Succeeded' || current.phase === 'Failed')) return;
    await this.killOrphan(record.runId);
    const attempts: Attempts = current ?? { phase: 'Pending', failures: [], stopping: false };
    this.runs.set(record.runId, attempts);
    this.spawnWorker(record, attempts);
  }

  private pidFile(runId: string): string {
    return path.join(this.store.runDir(runId), 'worker.pid');
  }

  private logFile(runId: string): string {
    return path.join(this.store.runDir(runId), 'worker.log');
  }

  /** A worker left behind by a trainer that was killed: stop it (it saves a checkpoint) before starting anew. */
  private async killOrphan(runId: string): Promise<void> {
    let pid: number;
    try {
      pid = Number(fs.readFileSync(this.pidFile(runId), 'utf8'));
    } catch {
      return;
    }
    const alive = () => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    if (!pid || !alive()) return;
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + (this.options.stopGraceMs ?? 60_000);
    while (alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    if (alive()) process.kill(pid, 'SIGKILL');
  }

  private spawnWorker(record: RunRecord, attempts: Attempts): void {
    const dir = this.store.runDir(record.runId);
    const specFile = path.join(dir, 'run.json');
    fs.writeFileSync(specFile, JSON.stringify(record.request));
    const log = fs.openSync(this.logFile(record.runId), 'a');
    const child = spawn(
      this.options.python,
      ['-m', 'lvr', record.stage, '--spec', specFile, ...this.options.workerArgs],
      {
        env: {
          ...process.env,
          ...this.options.workerEnv,
          PYTHONPATH: this.options.pythonPath,
          LVR_RUN_ID: record.runId,
        },
        stdio: ['ignore', 'pipe', log],
      },
    );
    attempts.child = child;
    attempts.phase = 'Scheduled';
    attempts.stopping = false;
    if (child.pid) fs.writeFileSync(this.pidFile(record.runId), String(child.pid));
    let buffered = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      fs.appendFileSync(this.logFile(record.runId), chunk);
      buffered += chunk.toString('utf8');
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        if (attempts.phase === 'Scheduled' && /"type":\s*"(Running|Progress)"/.test(line)) {
          attempts.phase = 'Running';
          this.listener(record.runId, this.workload(record.runId));
        }
      }
    });
    child.on('error', (error) =>
      this.logger.error(`worker of ${record.runId} failed to start: ${error.message}`),
    );
    child.on('exit', (code, signal) => {
      fs.closeSync(log);
      fs.rmSync(this.pidFile(record.runId), { force: true });
      attempts.child = undefined;
      if (attempts.stopping) return;
      const exitCode = code ?? 128 + (signal === 'SIGKILL' ? 9 : 15);
      if (exitCode === 0) {
        attempts.phase = 'Succeeded';
      } else if (exitCode === EXIT_INVALID) {
        attempts.phase = 'Failed';
        attempts.exitCode = exitCode;
        attempts.reason = `invalid run spec, model or data (exit ${EXIT_INVALID}; not retried)`;
      } else if (attempts.failures.length >= this.options.backoffLimit) {
        attempts.phase = 'Failed';
        attempts.exitCode = exitCode;
        attempts.reason = `retries exhausted (backoffLimit); last exit code ${exitCode}`;
      } else {
        attempts.failures.push({
          pod: `${record.runId}-attempt-${attempts.failures.length}`,
          reason: exitCode === 75 ? 'exit 75 (stopped after saving a checkpoint)' : `exit ${exitCode}`,
          exitCode,
          at: new Date().toISOString(),
        });
        attempts.phase = 'Pending';
        setTimeout(() => {
          if (!attempts.stopping) this.spawnWorker(record, attempts);
        }, 1000);
      }
      this.listener(record.runId, this.workload(record.runId));
    });
    this.listener(record.runId, this.workload(record.runId));
  }

  async stop(runId: string): Promise<void> {
    const attempts = this.runs.get(runId);
    if (!attempts) return;
    attempts.stopping = true;
    const child = attempts.child;
    if (!child) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), this.options.stopGraceMs ?? 60_000);
    await exited;
    clearTimeout(timer);
  }

  async watch(listener: WorkloadListener): Promise<void> {
    this.listener = listener;
    // After a restart, unfinished runs start again; the worker resumes from its newest checkpoint.
    for (const record of await this.store.list())
      if (!record.status.terminal) listener(record.runId, this.workload(record.runId));
  }

  workload(runId: string): WorkloadStatus | undefined {
    const attempts = this.runs.get(runId);
    if (!attempts) return undefined;
    return {
      phase: attempts.phase,
      retries: [...attempts.failures],
      ...(attempts.reason ? { reason: attempts.reason } : {}),
      ...(attempts.exitCode !== undefined ? { exitCode: attempts.exitCode } : {}),
    };
  }

  async logs(runId: string, tailLines: number): Promise<string> {
    try {
      return fs.readFileSync(this.logFile(runId), 'utf8').trimEnd().split('\n').slice(-tailLines).join('\n');
    } catch {
      return '';
    }
  }

  async admit(): Promise<void> {}

  async close(): Promise<void> {
    await Promise.all([...this.runs.keys()].map((runId) => this.stop(runId)));
  }
}
