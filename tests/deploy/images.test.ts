// The container images: Containerfile rules always; with LVR_IMAGE_TESTS=1 the images are built for real
// (scripts/images/build.sh; a cold build downloads ~3 GB of CUDA wheels) and run from their root filesystems.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CliResult, freePort, repoRoot } from './processes';

const imagesDir = path.join(repoRoot, 'infra', 'images');
const RED_SQUARE =
  'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAABwAAAAcCAIAAAD9b0jDAAAACXBIWXMAAAPoAAAD6AG1e1JrAAAAMElEQVRIiWO4I2JDdcQwauid0TAVGU1SNqM56s5ogSIyWp7ajFYnd0ZrU5Hh3ZgAAK4rlu6QiyZkAAAAAElFTkSuQmCC';

/** The instructions of each stage of a Containerfile. */
function stages(file: string): { from: string; lines: string[] }[] {
  const text = fs.readFileSync(path.join(imagesDir, file), 'utf8').replace(/\\\n/g, ' ');
  const out: { from: string; lines: string[] }[] = [];
  for (const line of text.split('\n').map((l) => l.trim())) {
    if (!line || line.startsWith('#')) continue;
    if (/^FROM\s/i.test(line)) out.push({ from: line, lines: [] });
    else out.at(-1)?.lines.push(line);
  }
  return out;
}

describe('Containerfiles', () => {
  for (const file of ['node.Containerfile', 'node-cuda.Containerfile', 'worker.Containerfile']) {
    test(`${file}: multi-stage; the final stage runs as non-root with no build tools and no secrets`, () => {
      const all = stages(file);
      assert.ok(all.length >= 2, 'a build stage and a final stage');
      const final = all.at(-1)!;
      const user = final.lines.find((l) => /^USER\s/i.test(l));
      assert.ok(user, 'the final stage sets USER');
      assert.match(user!, /^USER\s+[1-9][0-9]*(:[1-9][0-9]*)?$/, 'a numeric non-root uid');
      for (const line of final.lines) {
        assert.doesNotMatch(
          line,
          /\b(npm|npx|pip|apt-get|apt|gcc|make|tsc)\b/,
          `build tool in the final stage: ${line}`,
        );
        assert.doesNotMatch(
          line,
          /BUILD_CA|\.npmrc|_KEY\b|SECRET|\bTOKEN\b|PASSWORD/i,
          `credential in the final stage: ${line}`,
        );
      }
      const copies = final.lines.filter((l) => /^COPY\s/i.test(l));
      assert.ok(copies.length > 0);
    });
  }
});

function sh(command: string, args: string[], timeoutMs = 20 * 60_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const runRootfs = path.join(repoRoot, 'scripts', 'images', 'run-rootfs.sh');

describe(
  'built images',
  { skip: process.env.LVR_IMAGE_TESTS !== '1' && 'set LVR_IMAGE_TESTS=1 to build and run the images' },
  () => {
    const built = new Map<string, { name: string; size: string }>();

    before(async () => {
      for (const which of ['node', 'node-cuda', 'worker']) {
        const result = await sh('bash', [path.join(repoRoot, 'scripts', 'images', 'build.sh'), which]);
        assert.equal(result.code, 0, `build.sh ${which}:\n${result.stderr.slice(-4000)}`);
        const line = result.stdout.split('\n').find((l) => l.startsWith('IMAGE '))!;
        const [, name, size] = /name=(\S+) .*size=(\S+)/.exec(line)!;
        built.set(which, { name, size });
        process.stdout.write(`# ${line}\n`);
      }
    });

    test('the Node image serves the demo bundle: /health/ready and a chat completion with an image', async () => {
      const image = built.get('node')!.name;
      const port = await freePort();
      const api = spawn(
        runRootfs,
        [image, 'HOST=127.0.0.1', `PORT=${port}`, '--', 'node', 'dist/apps/api/src/main.js'],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let log = '';
      api.stdout.on('data', (d) => (log += d));
      api.stderr.on('data', (d) => (log += d));
      try {
        const base = `http://127.0.0.1:${port}`;
        const deadline = Date.now() + 120_000;
        let ready = 0;
        while (Date.now() < deadline && ready !== 200) {
          assert.equal(api.exitCode, null, `the API exited:\n${log}`);
          ready = await fetch(`${base}/health/ready`).then(
            (r) => r.status,
            () => 0,
          );
          if (ready !== 200) await new Promise((r) => setTimeout(r, 500));
        }
        assert.equal(ready, 200, `not ready:\n${log}`);
        const response = await fetch(`${base}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            model: 'lvr-tiny-demo',
            max_tokens: 8,
            temperature: 0,
            messages: [
              {
                role: 'user',
                content: [
                  { type: 'image_url', image_url: { url: RED_SQUARE } },
                  { type: 'text', text: 'What colour is this square?' },
                ],
              },
            ],
          }),
        });
        const body = (await response.json()) as {
          choices: { message: { content: string } }[];
          usage: { completion_tokens: number };
        };
        assert.equal(response.status, 200, JSON.stringify(body));
        assert.equal(body.choices.length, 1);
        assert.ok(body.usage.completion_tokens > 0);
      } finally {
        api.kill('SIGTERM');
        await new Promise((r) => api.once('close', r));
      }
    });

    test('the Node image holds no npm, no TypeScript compiler and no sources', async () => {
      const image = built.get('node')!.name;
      const probe = await sh(runRootfs, [
        image,
        '--',
        'node',
        '-e',
        "const fs=require('fs');for(const p of ['/usr/bin/npm','/app/node_modules/typescript','/app/node_modules/@swc/core','/app/apps','/app/libs'])if(fs.existsSync(p))console.log('present',p)",
      ]);
      assert.equal(probe.code, 0, probe.stderr);
      assert.equal(probe.stdout.trim(), '');
    });

    test('the node-cuda image: the addon opens ONNX Runtime; its CUDA provider finds every library but the driver', async () => {
      const image = built.get('node-cuda')!.name;
      const ortDir = '/app/node_modules/onnxruntime-node/bin/napi-v6/linux/x64';
      const init = await sh(runRootfs, [
        image,
        '--',
        'node',
        '-e',
        `console.log(require(process.env.LVR_ORT_ADDON).init('${ortDir}/libonnxruntime.so.1'))`,
      ]);
      assert.equal(init.code, 0, init.stderr);
      assert.equal(init.stdout.trim(), '1.30.0');
      const ldd = await sh(runRootfs, [image, '--', 'ldd', `${ortDir}/libonnxruntime_providers_cuda.so`]);
      assert.equal(ldd.code, 0, ldd.stderr);
      const missing = ldd.stdout
        .split('\n')
        .filter((l) => l.includes('not found'))
        .map((l) => l.trim().split(/\s/)[0]);
      assert.deepEqual(missing, ['libcuda.so.1'], 'only the driver library, which the GPU node provides');
      // cuDNN (GroupQueryAttention's flash attention) and NVRTC (its runtime-compiled kernels) ship with it too.
      const libs = await sh(runRootfs, [image, '--', 'sh', '-c', 'ls /opt/lvr-cuda/lib']);
      assert.equal(libs.code, 0, libs.stderr);
      const cudnn = libs.stdout.split('\n').filter((l) => /^libcudnn.*\.so\.9$/.test(l));
      assert.ok(cudnn.includes('libcudnn.so.9') && cudnn.includes('libcudnn_graph.so.9'), libs.stdout);
      assert.ok(libs.stdout.split('\n').includes('libnvrtc.so.13'), libs.stdout);
      for (const lib of cudnn) {
        const deps = await sh(runRootfs, [image, '--', 'ldd', `/opt/lvr-cuda/lib/${lib}`]);
        assert.equal(deps.code, 0, deps.stderr);
        const unresolved = deps.stdout
          .split('\n')
          .filter((l) => l.includes('not found') && !l.includes('libcuda.so.1'));
        assert.deepEqual(unresolved, [], `${lib}: every library but the driver's resolves`);
      }
    });

    test('the worker image holds the CUDA build of PyTorch', async () => {
      const image = built.get('worker')!.name;
      const probe = await sh(runRootfs, [
        '--entrypoint',
        'python',
        image,
        '--',
        '-c',
        'import torch, onnxruntime; print(torch.version.cuda or "cpu")',
      ]);
      assert.equal(probe.code, 0, probe.stderr);
      assert.match(probe.stdout.trim(), /^\d+\.\d+$/, 'torch.version.cuda');
    });

    test('the worker image runs the CLI: --help and a CPU export of tiny:0', async () => {
      const image = built.get('worker')!.name;
      const help = await sh(runRootfs, [image, '--', '--help']);
      assert.equal(help.code, 0, help.stderr);
      assert.match(help.stdout, /export/);
      const out = fs.mkdtempSync(path.join(os.tmpdir(), 'lvr-worker-export-'));
      fs.chmodSync(out, 0o777);
      try {
        const exported = await sh(runRootfs, [
          '--bind',
          `${out}:/tmp/out`,
          image,
          '--',
          'export',
          'tiny:0',
          '/tmp/out/bundle',
        ]);
        assert.equal(exported.code, 0, exported.stderr.slice(-4000));
        assert.ok(fs.existsSync(path.join(out, 'bundle', '_COMPLETE')), 'the bundle is complete');
        assert.ok(fs.existsSync(path.join(out, 'bundle', 'decoder.onnx')));
      } finally {
        fs.rmSync(out, { recursive: true, force: true });
      }
    });

    after(() => {
      for (const [which, { name, size }] of built)
        process.stdout.write(`# image ${which}: ${name} ${size}\n`);
    });
  },
);
