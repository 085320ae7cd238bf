#!/usr/bin/env node
// npm run stack:up | stack:down | stack:status, and `npm run worker -- ARGS` (the Python worker CLI in the venv).
import { spawnSync } from 'node:child_process';
import { stackEnv, stackStatus, stackDown, stackUp } from './stack.mjs';
import { repoRoot } from './lib.mjs';
import python from './services/python.mjs';

const [command, ...rest] = process.argv.slice(2);

function selected() {
  const only = process.env.LVR_STACK_SERVICES;
  return only ? only.split(',').map((s) => s.trim()) : undefined;
}

try {
  switch (command) {
    case 'up': {
      const status = await stackUp(selected());
      process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
      break;
    }
    case 'down':
      await stackDown(selected());
      break;
    case 'status':
      process.stdout.write(`${JSON.stringify(await stackStatus(), null, 2)}\n`);
      break;
    case 'env': {
      const env = await stackEnv();
      for (const [key, value] of Object.entries(env))
        process.stdout.write(`export ${key}=${JSON.stringify(value)}\n`);
      break;
    }
    case 'worker': {
      await python.provision();
      const args = rest[0] === '--' ? rest.slice(1) : rest;
      const env = { ...process.env, ...(await stackEnv()) };
      const result = spawnSync(python.endpoints().python, ['-m', 'lvr', ...args], {
        stdio: 'inherit',
        env,
        cwd: repoRoot,
      });
      process.exit(result.status ?? 1);
      break;
    }
    default:
      process.stderr.write('usage: cli.mjs up|down|status|env|worker -- ARGS\n');
      process.exit(2);
  }
} catch (error) {
  process.stderr.write(`[stack] ${error.message}\n`);
  process.exit(1);
}
