import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { LvrEngine } from '../src';
import { REPO_ROOT } from './helpers/python';

// Loading on an execution provider whose libraries are missing (CI has no CUDA provider and no driver).
const cudaProvider = path.join(
  path.dirname(require.resolve('onnxruntime-node/package.json')),
  'bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so',
);

describe('engine: execution provider load errors', () => {
  it(
    'a cuda engine without the CUDA provider libraries fails its load naming what a CUDA node needs',
    {
      skip: fs.existsSync(cudaProvider) && 'the CUDA provider is installed here',
    },
    async () => {
      await assert.rejects(
        LvrEngine.load(path.join(REPO_ROOT, 'models', 'lvr-tiny-demo'), {
          executionProvider: 'cuda',
          verifyChecksums: false,
          threads: 1,
        }),
        (e: Error) => {
          assert.match(
            e.message,
            /the cuda execution provider did not load \(.*Failed to load shared library/s,
          );
          assert.match(e.message, /libonnxruntime_providers_cuda\.so/);
          assert.match(e.message, /libcuda\.so\.1/);
          return true;
        },
      );
    },
  );
});
