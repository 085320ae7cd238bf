import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const REPO_ROOT = path.resolve(__dirname, '../../../..');
export const ORACLES = path.resolve(__dirname, '../oracles');

/** The venv Python exported by `npm test`; a missing variable fails the test naming it. */
export function pythonBin(): string {
  const bin = process.env.LVR_PYTHON;
  if (!bin) {
    throw new Error(
      'LVR_PYTHON is not set: run through `npm test` or `eval "$(node scripts/stack/cli.mjs env)"` first',
    );
  }
  return bin;
}

/** Runs a Python oracle script with a JSON payload (via a temp file) and parses its JSON stdout. */
export function runPython<T>(script: string, payload: unknown, args: string[] = []): T {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lvr-oracle-'));
  const input = path.join(dir, 'input.json');
  fs.writeFileSync(input, JSON.stringify(payload));
  try {
    const res = spawnSync(pythonBin(), [path.join(ORACLES, script), input, ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, PYTHONPATH: path.join(REPO_ROOT, 'workers') },
      encoding: 'utf8',
      maxBuffer: 1 << 30,
    });
    if (res.status !== 0) throw new Error(`${script} failed (${res.status}): ${res.stderr}`);
    return JSON.parse(res.stdout) as T;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}
