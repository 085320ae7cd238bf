#!/usr/bin/env node
// `npm run bench -- engine-gpu`: the engine on a GPU (WebGPU EP, KV caches on the device, the host-KV path as the
// in-run baseline) against PyTorch on the same card, both sides in one run (bench/engine/gpu/device.sh).
// On a machine with an NVIDIA GPU and this repository's node_modules it bundles the bench and runs device.sh with
// this Node. Elsewhere it packs .nodebin/ (Node, onnxruntime-node, the bundled bench, the tokenizer; see
// scripts/gpu/pack-node-bench.mjs) for a GPU machine without Node and prints the command to run there.
import { execFileSync, spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const hasGpu = spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8' }).status === 0;
const pack = (...flags) =>
  execFileSync(
    process.execPath,
    [path.join(root, 'scripts/gpu/pack-node-bench.mjs'), '--no-sharp', ...flags],
    {
      stdio: 'inherit',
    },
  );
if (!hasGpu) {
  pack();
  console.log(
    'no NVIDIA GPU here: .nodebin/ is packed. On the GPU machine (with .nodebin/ and .gl/ carried):\n' +
      '  bash bench/engine/gpu/device.sh   # env: BUDGET_S, LAYERS, VISION_LAYERS, OUT, LVR_PYTHON',
  );
  process.exit(0);
}
pack('--app-only');
const res = spawnSync('bash', [path.join(root, 'bench/engine/gpu/device.sh')], {
  cwd: root,
  stdio: 'inherit',
  env: {
    ...process.env,
    NODE: process.execPath,
    APP: path.join(root, '.nodebin/app/bench.js'),
    LVR_PYTHON: process.env.LVR_GPU_PYTHON ?? 'python3',
  },
});
process.exit(res.status ?? 1);
