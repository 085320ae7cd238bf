#!/usr/bin/env node
// Builds the fused-decoder addon (ort_fused.c) into libs/engine/native/build/ort_fused.node with the system C
// compiler, Node's own headers (next to the node binary) and ONNX Runtime's C API headers. The headers come from the Go
// module proxy (the module github.com/yalue/onnxruntime_go ships them) once, cached under
// ~/.cache/lvr-platform/ort-c-api-<module version>/. No ONNX Runtime library is linked: the addon opens one at runtime.
//   node libs/engine/native/build.mjs [--force]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const HEADER_MODULE = 'github.com/yalue/onnxruntime_go';
const HEADER_VERSION = 'v1.27.0'; // ORT C API version 24; newer runtimes (1.30) serve older API versions
const HEADERS = ['onnxruntime_c_api.h', 'onnxruntime_ep_c_api.h'];

const here = path.dirname(new URL(import.meta.url).pathname);
const source = path.join(here, 'ort_fused.c');
const output = path.join(here, 'build', 'ort_fused.node');
const cacheRoot = process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache');
const headerDir = path.join(cacheRoot, 'lvr-platform', `ort-c-api-${HEADER_VERSION}`);

async function ensureHeaders() {
  if (HEADERS.every((h) => fs.existsSync(path.join(headerDir, h)))) return;
  const proxy = (process.env.GOPROXY ?? 'https://proxy.golang.org').split(/[,|]/)[0];
  const url = `${proxy}/${HEADER_MODULE}/@v/${HEADER_VERSION}.zip`;
  const res = await fetch(url);
  if (!res.ok) throw new Error(`fetching ONNX Runtime headers from ${url}: HTTP ${res.status}`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ort-headers-'));
  try {
    const zip = path.join(tmp, 'module.zip');
    fs.writeFileSync(zip, Buffer.from(await res.arrayBuffer()));
    const inZip = HEADERS.map((h) => `${HEADER_MODULE}@${HEADER_VERSION}/${h}`);
    execFileSync('unzip', ['-q', '-o', zip, ...inZip, '-d', tmp]);
    const staged = `${headerDir}.partial`;
    fs.rmSync(staged, { recursive: true, force: true });
    fs.mkdirSync(staged, { recursive: true });
    for (const h of HEADERS)
      fs.copyFileSync(path.join(tmp, `${HEADER_MODULE}@${HEADER_VERSION}`, h), path.join(staged, h));
    fs.rmSync(headerDir, { recursive: true, force: true });
    fs.renameSync(staged, headerDir);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

function nodeIncludeDir() {
  const dir = path.resolve(path.dirname(process.execPath), '..', 'include', 'node');
  if (!fs.existsSync(path.join(dir, 'node_api.h'))) {
    throw new Error(`node_api.h not found in ${dir}: this Node installation has no headers`);
  }
  return dir;
}

export async function buildAddon({ force = false } = {}) {
  if (!force && fs.existsSync(output) && fs.statSync(output).mtimeMs >= fs.statSync(source).mtimeMs)
    return output;
  await ensureHeaders();
  fs.mkdirSync(path.dirname(output), { recursive: true });
  const cc = process.env.CC ?? 'cc';
  const partial = `${output}.partial`;
  execFileSync(
    cc,
    [
      '-O2',
      '-Wall',
      '-Wextra',
      '-Wno-unused-parameter',
      '-Werror',
      '-shared',
      '-fPIC',
      `-I${nodeIncludeDir()}`,
      `-I${headerDir}`,
      source,
      '-o',
      partial,
      '-ldl',
    ],
    { stdio: 'inherit' },
  );
  fs.renameSync(partial, output);
  return output;
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  console.log(await buildAddon({ force: process.argv.includes('--force') }));
}
