// MinIO server built with `go install` at a pinned pseudo-version (the last commit the Go proxy serves), on loopback.
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  cacheDir,
  ensureDir,
  envInt,
  isAlive,
  portOpen,
  readPid,
  runStep,
  startDetached,
  stateDir,
  stopProcess,
  waitUntil,
} from '../lib.mjs';

// RELEASE tags are not semver, so the Go proxy only serves pseudo-versions; this is the repository's final commit.
const MINIO_VERSION = 'v0.0.0-20260212201848-7aac2a2c5b7c';
const binDir = path.join(cacheDir, 'bin', `minio-${MINIO_VERSION}`);
const binary = path.join(binDir, 'minio');

function ports() {
  return { api: envInt('LVR_MINIO_PORT', 39000), console: envInt('LVR_MINIO_CONSOLE_PORT', 39001) };
}

/**
 * Test-stack credentials are generated per stack and kept in the state dir (mode 0600), so nothing secret is
 * committed; LVR_MINIO_ROOT_USER / LVR_MINIO_ROOT_PASSWORD override them.
 */
function credentials() {
  const file = path.join(ensureDir(path.join(stateDir, 'minio')), 'credentials.json');
  if (process.env.LVR_MINIO_ROOT_USER && process.env.LVR_MINIO_ROOT_PASSWORD) {
    return { accessKey: process.env.LVR_MINIO_ROOT_USER, secretKey: process.env.LVR_MINIO_ROOT_PASSWORD };
  }
  if (!fs.existsSync(file)) {
    const generated = {
      accessKey: `lvr${randomBytes(6).toString('hex')}`,
      secretKey: randomBytes(24).toString('hex'),
    };
    fs.writeFileSync(file, JSON.stringify(generated), { mode: 0o600 });
  }
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

export default {
  name: 'minio',

  provisioned() {
    return fs.existsSync(binary);
  },

  async provision() {
    if (this.provisioned()) return;
    ensureDir(binDir);
    runStep(
      'minio-build',
      'go',
      ['install', '-trimpath', '-ldflags', '-s -w', `github.com/minio/minio@${MINIO_VERSION}`],
      { env: { GOBIN: binDir, CGO_ENABLED: '0', GOFLAGS: '-mod=mod' } },
    );
  },

  async start() {
    if (isAlive(readPid('minio'))) return this.endpoints();
    const p = ports();
    const dir = ensureDir(path.join(stateDir, 'minio'));
    const dataDir = path.join(dir, 'data');
    fs.rmSync(dataDir, { recursive: true, force: true });
    const { accessKey, secretKey } = credentials();
    const { pid, logFile } = startDetached(
      'minio',
      binary,
      [
        'server',
        dataDir,
        '--address',
        `127.0.0.1:${p.api}`,
        '--console-address',
        `127.0.0.1:${p.console}`,
        '--quiet',
      ],
      {
        env: {
          MINIO_ROOT_USER: accessKey,
          MINIO_ROOT_PASSWORD: secretKey,
          MINIO_BROWSER: 'off',
          MINIO_UPDATE: 'off',
          MINIO_CI_CD: '1',
        },
      },
    );
    await waitUntil('minio', () => minioReady(p.api), { pid, logFile, timeoutMs: 60000 });
    return this.endpoints();
  },

  async stop() {
    return stopProcess('minio');
  },

  endpoints() {
    const p = ports();
    const { accessKey, secretKey } = credentials();
    return {
      endpoint: `http://127.0.0.1:${p.api}`,
      accessKey,
      secretKey,
      region: 'us-east-1',
      pid: readPid('minio'),
      log: path.join(stateDir, 'minio', 'minio.log'),
    };
  },

  async running() {
    return isAlive(readPid('minio')) && (await portOpen(ports().api));
  },

  env(endpoints) {
    return {
      LVR_S3_ENDPOINT: endpoints.endpoint,
      LVR_S3_ACCESS_KEY: endpoints.accessKey,
      LVR_S3_SECRET_KEY: endpoints.secretKey,
      LVR_S3_REGION: endpoints.region,
    };
  },
};

async function minioReady(port) {
  if (!(await portOpen(port))) return false;
  const response = await fetch(`http://127.0.0.1:${port}/minio/health/ready`);
  return response.ok;
}
