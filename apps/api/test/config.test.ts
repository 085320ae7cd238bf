import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig, parseModelList } from '../src/config/api-config';
import { REPO_ROOT } from './support/server-process';

describe('configuration', () => {
  it('defaults to 127.0.0.1:8080 with no keys', () => {
    const config = loadConfig({});
    assert.equal(config.host, '127.0.0.1');
    assert.equal(config.port, 8080);
    assert.deepEqual(config.apiKeys, []);
  });

  it('refuses a non-loopback bind without API keys unless explicitly allowed', () => {
    assert.throws(() => loadConfig({ HOST: '0.0.0.0' }), ConfigError);
    assert.equal(loadConfig({ HOST: '0.0.0.0', LVR_ALLOW_UNAUTHENTICATED: '1' }).host, '0.0.0.0');
    assert.equal(loadConfig({ HOST: '0.0.0.0', LVR_API_KEYS: 'a' }).host, '0.0.0.0');
    assert.equal(loadConfig({ HOST: '::1' }).host, '::1');
  });

  it('reads API keys from LVR_API_KEYS and a mounted secret file (comments and blanks ignored)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lvr-keys-'));
    const file = path.join(dir, 'keys');
    fs.writeFileSync(file, '# rotated 2026-11\nsk-file-1\n\n  sk-file-2  \n');
    const config = loadConfig({ LVR_API_KEYS: 'sk-env-1, sk-env-2', LVR_API_KEYS_FILE: file });
    assert.deepEqual(config.apiKeys, ['sk-env-1', 'sk-env-2', 'sk-file-1', 'sk-file-2']);
    assert.throws(() => loadConfig({ LVR_API_KEYS_FILE: path.join(dir, 'missing') }), ConfigError);
  });

  it('parses model lists and rejects malformed numbers', () => {
    assert.deepEqual(parseModelList('a=/m/a, s3://bucket/p/b ,c=s3://bucket/c'), [
      { id: 'a', uri: '/m/a' },
      { uri: 's3://bucket/p/b' },
      { id: 'c', uri: 's3://bucket/c' },
    ]);
    assert.throws(() => loadConfig({ PORT: 'eighty' }), ConfigError);
    assert.throws(() => loadConfig({ LVR_MAX_CONCURRENT: '0' }), ConfigError);
    assert.throws(() => loadConfig({ LVR_LOG_LEVEL: 'loud' }), ConfigError);
  });

  it('picks the engine execution provider from LVR_EXECUTION_PROVIDER (cpu by default, webgpu or cuda on GPUs)', () => {
    assert.equal(loadConfig({}).executionProvider, 'cpu');
    assert.equal(loadConfig({ LVR_EXECUTION_PROVIDER: 'webgpu' }).executionProvider, 'webgpu');
    assert.equal(loadConfig({ LVR_EXECUTION_PROVIDER: 'cuda' }).executionProvider, 'cuda');
    assert.throws(
      () => loadConfig({ LVR_EXECUTION_PROVIDER: 'rocm' }),
      /LVR_EXECUTION_PROVIDER must be cpu\|webgpu\|cuda/,
    );
  });

  it('picks the fused decoder’s GPU kernels from LVR_GPU_ATTENTION and LVR_INT4_MIXED_GEMM_FROM', () => {
    assert.equal(loadConfig({}).gpuAttention, undefined);
    assert.equal(loadConfig({}).int4MixedGemmFromSlots, 0);
    const gpu = loadConfig({
      LVR_GPU_ATTENTION: 'xqa',
      LVR_INT4_MIXED_GEMM_FROM: '8',
      LVR_MAX_CONCURRENT: '32',
    });
    assert.equal(gpu.gpuAttention, 'xqa');
    assert.equal(gpu.int4MixedGemmFromSlots, 8);
    assert.throws(
      () => loadConfig({ LVR_GPU_ATTENTION: 'fast' }),
      /LVR_GPU_ATTENTION must be auto\|cudnn\|xqa\|flash/,
    );
    assert.throws(() => loadConfig({ LVR_INT4_MIXED_GEMM_FROM: '-1' }), ConfigError);
    assert.equal(loadConfig({}).fusedProjections, undefined);
    assert.equal(loadConfig({ LVR_FUSED_PROJECTIONS: 'onnx' }).fusedProjections, 'onnx');
    assert.throws(
      () => loadConfig({ LVR_FUSED_PROJECTIONS: 'cublas' }),
      /LVR_FUSED_PROJECTIONS must be auto\|lvr\|onnx, got "cublas"/,
    );
    assert.throws(
      () => loadConfig({ LVR_INT4_MIXED_GEMM_FROM: '16', LVR_MAX_CONCURRENT: '8' }),
      /must be at most LVR_MAX_CONCURRENT/,
    );
  });

  it('main exits with code 2 and a JSON message, without the keys, when the configuration is unsafe', () => {
    const res = spawnSync(process.execPath, ['-r', '@swc-node/register', 'apps/api/src/main.ts'], {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        HOST: '0.0.0.0',
        LVR_API_KEYS: '',
        LVR_API_KEYS_FILE: '',
        LVR_ALLOW_UNAUTHENTICATED: '',
      },
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(res.status, 2);
    const line = JSON.parse(res.stderr.trim().split('\n').pop()!);
    assert.equal(line.level, 'error');
    assert.match(line.msg, /refusing to listen on 0\.0\.0\.0 without API keys/);
  });
});
