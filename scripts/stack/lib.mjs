// Shared helpers for the loopback test-service stack: paths, logged steps, detached processes, readiness waits.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Heavy, reusable downloads and builds (survive fresh clones on the same machine). */
export const cacheDir = process.env.LVR_CACHE_DIR || path.join(os.homedir(), '.cache', 'lvr-platform');
/** Per-checkout runtime state: pid files, logs, data dirs, stack.json. */
export const stateDir = path.resolve(process.env.LVR_STACK_DIR || path.join(repoRoot, '.infra', 'run'));
export const stackFile = path.join(stateDir, 'stack.json');

export function ensureDir(dir) {
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

export function envInt(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number.parseInt(raw, 10);
  if (!Number.isInteger(value) || value <= 0 || value > 65535)
    throw new Error(`${name}=${raw} is not a valid port`);
  return value;
}

export function log(message) {
  process.stderr.write(`[stack] ${message}\n`);
}

export class StepError extends Error {
  constructor(step, logFile, detail) {
    super(`step "${step}" failed${detail ? `: ${detail}` : ''}${logFile ? ` (log: ${logFile})` : ''}`);
    this.step = step;
    this.logFile = logFile;
  }
}

/** Runs a provisioning command synchronously with its output in a log file; throws StepError naming the step. */
export function runStep(step, command, args, options = {}) {
  const logFile = path.join(
    ensureDir(path.join(stateDir, 'logs')),
    `${step.replace(/[^a-z0-9-]+/gi, '-')}.log`,
  );
  log(`${step}: ${command} ${args.join(' ')}`);
  const started = Date.now();
  const fd = fs.openSync(logFile, 'a');
  const result = spawnSync(command, args, {
    cwd: options.cwd || repoRoot,
    env: { ...process.env, ...(options.env || {}) },
    stdio: ['ignore', fd, fd],
    timeout: options.timeoutMs || 60 * 60 * 1000,
  });
  fs.closeSync(fd);
  if (result.error) throw new StepError(step, logFile, result.error.message);
  if (result.status !== 0) throw new StepError(step, logFile, `exit code ${result.status}`);
  log(`${step}: done in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  return logFile;
}

export function capture(command, args, options = {}) {
  const result = spawnSync(command, args, { encoding: 'utf8', ...options });
  return { status: result.status, stdout: result.stdout || '', stderr: result.stderr || '' };
}

export function sha256OfFiles(files) {
  const hash = createHash('sha256');
  for (const file of files) hash.update(fs.readFileSync(file));
  return hash.digest('hex').slice(0, 16);
}

/** Starts a long-running service detached from this process, recording its pid and log. */
export function startDetached(name, command, args, options = {}) {
  const dir = ensureDir(path.join(stateDir, name));
  const logFile = path.join(dir, `${name}.log`);
  const fd = fs.openSync(logFile, 'a');
  const child = spawn(command, args, {
    cwd: options.cwd || dir,
    env: { ...process.env, ...(options.env || {}) },
    stdio: ['ignore', fd, fd],
    detached: true,
  });
  fs.closeSync(fd);
  child.unref();
  fs.writeFileSync(path.join(dir, 'pid'), String(child.pid));
  return { pid: child.pid, logFile };
}

export function readPid(name) {
  try {
    const pid = Number.parseInt(fs.readFileSync(path.join(stateDir, name, 'pid'), 'utf8'), 10);
    return Number.isInteger(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

export function isAlive(pid) {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function stopProcess(name, graceMs = 10000) {
  const pid = readPid(name);
  if (!isAlive(pid)) return false;
  const signalGroup = (signal) => {
    try {
      process.kill(-pid, signal);
    } catch {
      try {
        process.kill(pid, signal);
      } catch {
        /* already gone */
      }
    }
  };
  signalGroup('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (isAlive(pid) && Date.now() < deadline) await sleep(200);
  if (isAlive(pid)) signalGroup('SIGKILL');
  fs.rmSync(path.join(stateDir, name, 'pid'), { force: true });
  return true;
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function portOpen(port, host = '127.0.0.1') {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    socket.setTimeout(1000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/**
 * Polls `probe` until it resolves truthy. Fails early with the service's log tail when its process died,
 * and after `timeoutMs` otherwise.
 */
export async function waitUntil(name, probe, { timeoutMs = 120000, pid, logFile } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  while (Date.now() < deadline) {
    if (pid && !isAlive(pid)) {
      throw new Error(`${name} exited while starting; last log lines:\n${tail(logFile)}`);
    }
    try {
      if (await probe()) return;
    } catch (error) {
      lastError = error;
    }
    await sleep(500);
  }
  throw new Error(
    `${name} did not become ready within ${timeoutMs / 1000}s${lastError ? ` (${lastError.message})` : ''}; log: ${logFile}\n${tail(logFile)}`,
  );
}

export function tail(file, lines = 20) {
  if (!file || !fs.existsSync(file)) return '(no log)';
  return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
}

export function which(command) {
  const result = spawnSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : undefined;
}
