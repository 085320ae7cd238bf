#!/usr/bin/env node
// `npm run bench -- NAME [args]`: runs bench/NAME/run.ts (or run.mjs). Every bench compares against a baseline in
// the same run and prints a final `BENCH {json}` line. LVR_PYTHON comes from the environment or the stack's env.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const [name, ...rest] = process.argv.slice(2);
const benches = fs
  .readdirSync(path.join(root, 'bench'))
  .filter(
    (d) =>
      fs.existsSync(path.join(root, 'bench', d)) && fs.statSync(path.join(root, 'bench', d)).isDirectory(),
  );
// Benches in nested folders, by name.
const nested = { 'engine-gpu': 'engine/gpu' };
benches.push(...Object.keys(nested));
if (!name || !benches.includes(name)) {
  console.error(`usage: npm run bench -- <${benches.join('|')}> [args]`);
  process.exit(2);
}
const entry = ['run.ts', 'run.mjs']
  .map((f) => path.join(root, 'bench', nested[name] ?? name, f))
  .find((f) => fs.existsSync(f));
if (!entry) {
  console.error(`bench/${name} has no run.ts or run.mjs`);
  process.exit(2);
}
const env = { ...process.env };
if (!env.LVR_PYTHON) {
  try {
    const out = execFileSync(process.execPath, [path.join(root, 'scripts/stack/cli.mjs'), 'env'], {
      encoding: 'utf8',
    });
    for (const m of out.matchAll(/^export (\w+)="(.*)"$/gm)) env[m[1]] ??= m[2];
  } catch {
    /* benches that need Python report it themselves */
  }
}
const args = entry.endsWith('.ts') ? ['-r', '@swc-node/register', entry, ...rest] : [entry, ...rest];
const res = spawnSync(process.execPath, args, { cwd: root, env, stdio: 'inherit' });
process.exit(res.status ?? 1);
