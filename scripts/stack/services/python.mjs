// The Python virtual environment for workers/ (PyTorch, transformers, ONNX tooling, pytest), pinned by a lock file.
// It lives in the cache keyed by the lock's hash, so fresh clones reuse it and a changed lock builds a new one.
import fs from 'node:fs';
import path from 'node:path';
import { cacheDir, ensureDir, repoRoot, runStep, sha256OfFiles } from '../lib.mjs';

const lockFile = path.join(repoRoot, 'workers', 'requirements.lock.txt');
const workersDir = path.join(repoRoot, 'workers');

function venvDir() {
  return path.join(cacheDir, `venv-${sha256OfFiles([lockFile])}`);
}

export function pythonBin() {
  return path.join(venvDir(), 'bin', 'python');
}

export default {
  name: 'python',

  provisioned() {
    return fs.existsSync(path.join(venvDir(), '.complete'));
  },

  async provision() {
    if (this.provisioned()) return;
    const dir = venvDir();
    fs.rmSync(dir, { recursive: true, force: true });
    ensureDir(path.dirname(dir));
    const basePython = process.env.LVR_BASE_PYTHON || 'python3';
    runStep('python-venv', basePython, ['-m', 'venv', dir]);
    runStep('python-deps', path.join(dir, 'bin', 'pip'), [
      'install',
      '--disable-pip-version-check',
      '--no-input',
      '-r',
      lockFile,
    ]);
    fs.writeFileSync(path.join(dir, '.complete'), new Date().toISOString());
  },

  async start() {
    return this.endpoints();
  },

  async stop() {
    return false;
  },

  endpoints() {
    return { python: pythonBin(), pythonPath: workersDir };
  },

  async running() {
    return this.provisioned();
  },

  env(endpoints) {
    return { LVR_PYTHON: endpoints.python, PYTHONPATH: endpoints.pythonPath };
  },
};
