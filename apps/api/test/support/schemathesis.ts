import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const SCHEMATHESIS_VERSION = '4.32.5';

/**
 * Path of the `schemathesis` CLI in its own cached virtual environment (~/.cache/lvr-platform/), created on first
 * use from PyPI with a pinned version. Idempotent: a `.complete` marker is written only after a successful install.
 */
export function ensureSchemathesis(): string {
  const venv = path.join(os.homedir(), '.cache', 'lvr-platform', `venv-schemathesis-${SCHEMATHESIS_VERSION}`);
  const bin = path.join(venv, 'bin', 'schemathesis');
  if (fs.existsSync(path.join(venv, '.complete')) && fs.existsSync(bin)) return bin;
  const python = process.env.LVR_SCHEMATHESIS_PYTHON ?? 'python3';
  fs.rmSync(venv, { recursive: true, force: true });
  try {
    execFileSync(python, ['-m', 'venv', venv], { stdio: 'inherit' });
    execFileSync(path.join(venv, 'bin', 'pip'), ['install', '-q', `schemathesis==${SCHEMATHESIS_VERSION}`], {
      stdio: 'inherit',
      timeout: 600_000,
    });
  } catch (error) {
    throw new Error(
      `installing schemathesis ${SCHEMATHESIS_VERSION} into ${venv} failed: ${(error as Error).message}`,
    );
  }
  fs.writeFileSync(path.join(venv, '.complete'), `${SCHEMATHESIS_VERSION}\n`);
  return bin;
}
