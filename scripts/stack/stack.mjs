// Brings the loopback test services up and down and reports their endpoints as one JSON object.
import fs from 'node:fs';
import { ensureDir, log, stackFile, stateDir } from './lib.mjs';
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
