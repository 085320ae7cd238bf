#!/usr/bin/env node
// `npm run bench -- engine-gpu`: the engine on a GPU (WebGPU EP, KV caches on the device, the host-KV path as the
// in-run baseline) against PyTorch on the same card, both sides in one run (bench/engine/gpu/device.sh); with
// LVR_BENCH_EP=cuda the cuda EP's fused decoder instead (bench/engine/gpu/fused_call.sh: addon, engine, PyTorch).
// On a machine with an NVIDIA GPU and this repository's node_modules it bundles the bench and runs it with this Node
// (cuda: ORT_GPU_SITE names a folder holding onnxruntime-gpu's `onnxruntime` package). Elsewhere it packs .nodebin/
// (Node, onnxruntime-node, the bundled bench, the tokenizer, the addon; see scripts/gpu/pack-node-bench.mjs) and,
// for cuda, the onnxruntime-gpu parts (.ortpartN) for a GPU machine without Node or internet, and prints the steps.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
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
const cuda = process.env.LVR_BENCH_EP === 'cuda';
const addon = () =>
  execFileSync(process.execPath, [path.join(root, 'libs/engine/native/build.mjs')], {
    encoding: 'utf8',
  }).trim();
if (!hasGpu && cuda) {
  pack();
  fs.copyFileSync(addon(), path.join(root, '.nodebin/ort_fused.node'));
  execFileSync('bash', [path.join(root, 'bench/engine/gpu/ort_cuda_parts.sh'), 'pack'], {
    cwd: root,
    stdio: 'inherit',
  });
  console.log(
    'no NVIDIA GPU here: .nodebin/ and .ortpart1.. are packed. On the GPU machine (one call each, files under /tmp\n' +
      'kept between calls): for each part but the last, `mkdir -p /tmp/ortc && cp .ortpartK/* /tmp/ortc/` carrying\n' +
      '.ortpartK; then `OUT=DIR bash bench/engine/gpu/fused_call.sh` carrying the last part and .nodebin',
  );
  process.exit(0);
}
if (!hasGpu) {
  pack();
  console.log(
    'no NVIDIA GPU here: .nodebin/ is packed. On the GPU machine (with .nodebin/ and .gl/ carried):\n' +
      '  bash bench/engine/gpu/device.sh   # env: BUDGET_S, LAYERS, VISION_LAYERS, OUT, LVR_PYTHON',
  );
  process.exit(0);
}
pack('--app-only');
if (cuda && !process.env.ORT_GPU_SITE) {
  console.error(
    "LVR_BENCH_EP=cuda on a GPU host needs ORT_GPU_SITE (a folder with onnxruntime-gpu's `onnxruntime`)",
  );
  process.exit(2);
}
const script = cuda ? 'fused_call.sh' : 'device.sh';
const res = spawnSync('bash', [path.join(root, 'bench/engine/gpu', script)], {
  cwd: root,
  stdio: 'inherit',
  env: {
    ...process.env,
    NODE: process.execPath,
    APP: path.join(root, '.nodebin/app/bench.js'),
    LVR_PYTHON: process.env.LVR_GPU_PYTHON ?? 'python3',
    ...(cuda ? { LVR_ORT_ADDON: addon(), OUT: process.env.OUT ?? '/tmp/lvr-gpu-out' } : {}),
  },
});
process.exit(res.status ?? 1);
