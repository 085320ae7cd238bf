#!/usr/bin/env node
// Packs what a Node benchmark needs on the GPU machine (which has no Node and no npm) into .nodebin/, an ignored
// folder the device call carries: the bench bundled with esbuild (engine worker included), and compressed archives of
// the Node binary and of the native packages (onnxruntime-node with its WebGPU EP, sharp with libvips).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
const out = path.join(root, '.nodebin');
fs.mkdirSync(out, { recursive: true });

const [entry = 'bench/engine/gpu/bench.ts'] = process.argv.slice(2);
await build({
  entryPoints: {
    bench: path.join(root, entry),
    // The engine starts its ONNX sessions in a worker thread loaded from a file next to the caller.
    'session-worker': path.join(root, 'libs/engine/src/runtime/session-worker.ts'),
  },
  outdir: path.join(out, 'app'),
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  tsconfig: path.join(root, 'tsconfig.json'),
  external: ['onnxruntime-node', 'sharp'],
  logLevel: 'warning',
});

const nodeArchive = path.join(out, 'node.xz');
if (!fs.existsSync(nodeArchive)) {
  execFileSync('sh', ['-c', `xz -T2 -9 -c "${process.execPath}" > "${nodeArchive}"`]);
}
execFileSync('tar', [
  'cJf',
  path.join(out, 'native.tar.xz'),
  '--exclude=onnxruntime-node/bin/napi-v*/darwin',
  '--exclude=onnxruntime-node/bin/napi-v*/win32',
  '--exclude=onnxruntime-node/bin/napi-v*/linux/arm64',
  '-C',
  path.join(root, 'node_modules'),
  'onnxruntime-node',
  'onnxruntime-common',
  'sharp',
  '@img',
  'detect-libc',
  'semver',
]);
for (const file of fs.readdirSync(out)) {
  const stat = fs.statSync(path.join(out, file));
  if (stat.isFile()) process.stdout.write(`${file}\t${(stat.size / 1048576).toFixed(1)} MiB\n`);
}
