// Brings the loopback test services up and down and reports their endpoints as one JSON object.
import fs from 'node:fs';
import path from 'node:path';
import { ensureDir, isAlive, log, sleep, stackFile, stateDir } from './lib.mjs';
import { services } from './services/index.mjs';

function pick(names) {
  if (!names) return services;
  const unknown = names.filter((n) => !services.some((s) => s.name === n));
  if (unknown.length) throw new Error(`unknown service(s): ${unknown.join(', ')}`);
  return services.filter((s) => names.includes(s.name));
}

function readStackFile() {
  try {
    return JSON.parse(fs.readFileSync(stackFile, 'utf8'));
  } catch {
    return { services: {} };
  }
}

/** Provisions (first time only) and starts each service, returning which ones this call started. */
export async function stackUp(names) {
  ensureDir(stateDir);
  const release = await acquireLock();
  try {
    return await startServices(names);
  } finally {
    release();
  }
}

/**
 * Two `npm test` runs in one checkout must not start the same service twice: the second waits for the first's
 * `up` to finish and then finds the services running. A lock left by a dead process is taken over.
 */
async function acquireLock(timeoutMs = 60 * 60 * 1000) {
  const lockFile = path.join(stateDir, 'stack.lock');
  const deadline = Date.now() + timeoutMs;
  let announced = false;
  for (;;) {
    try {
      fs.writeFileSync(lockFile, String(process.pid), { flag: 'wx' });
      return () => fs.rmSync(lockFile, { force: true });
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
      const holder = Number.parseInt(fs.readFileSync(lockFile, 'utf8'), 10);
      if (!isAlive(holder)) {
        fs.rmSync(lockFile, { force: true });
        continue;
      }
      if (!announced) log(`waiting for another stack:up (pid ${holder}) to finish`);
      announced = true;
      if (Date.now() > deadline)
        throw new Error(`stack lock held by pid ${holder} for too long (${lockFile})`);
      await sleep(1000);
    }
  }
}

async function startServices(names) {
  const state = readStackFile();
  const started = [];
  for (const service of pick(names)) {
    if (!service.provisioned()) log(`${service.name}: first-time provisioning (cached afterwards)`);
    await service.provision();
    const wasRunning = await service.running();
    if (!wasRunning) log(`${service.name}: starting`);
    const endpoints = await service.start();
    if (!wasRunning) started.push(service.name);
    state.services[service.name] = endpoints;
    log(`${service.name}: ready`);
  }
  fs.writeFileSync(stackFile, JSON.stringify(state, null, 2));
  return { ...(await stackStatus()), started };
}

export async function stackDown(names) {
  for (const service of [...pick(names)].reverse()) {
    if (await service.stop()) log(`${service.name}: stopped`);
  }
}

export async function stackStatus() {
  const result = { stateDir, services: {} };
  for (const service of services) {
    const running = await service.running();
    result.services[service.name] = { running, provisioned: service.provisioned(), ...service.endpoints() };
  }
  return result;
}

/** Environment variables through which tests and workers find the running services. */
export async function stackEnv() {
  const env = {};
  for (const service of services) {
    if (await service.running()) Object.assign(env, service.env(service.endpoints()));
  }
  return env;
}
