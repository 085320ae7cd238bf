// A real Kubernetes control plane on loopback for tests: etcd, kube-apiserver, kube-controller-manager (Job controller)
// and kube-scheduler, with kwok playing the nodes (infra/k8s/nodes.yaml: 2 GPU nodes, 1 CPU node) and the pod
// lifecycles (infra/k8s/kwok-stages.yaml). Each start is a fresh, empty cluster.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import {
  ensureDir,
  envInt,
  isAlive,
  log,
  portOpen,
  readPid,
  repoRoot,
  startDetached,
  stateDir,
  stopProcess,
  waitUntil,
} from '../lib.mjs';
import { binaries, binariesProvisioned, K8S_VERSION, provisionBinaries } from './k8s-binaries.mjs';
import { credentialPaths, readToken, writeCredentials } from './k8s-credentials.mjs';

const clusterDir = path.join(stateDir, 'k8s');
const stagesFile = path.join(repoRoot, 'infra', 'k8s', 'kwok-stages.yaml');
const nodesFile = path.join(repoRoot, 'infra', 'k8s', 'nodes.yaml');
// Process names (state subdirectories) in start order; stop runs in reverse.
const COMPONENTS = ['k8s-etcd', 'k8s-apiserver', 'k8s-controller-manager', 'k8s-scheduler', 'k8s-kwok'];

function ports() {
  return {
    apiserver: envInt('LVR_K8S_APISERVER_PORT', 39443),
    etcd: envInt('LVR_K8S_ETCD_PORT', 39379),
    etcdPeer: envInt('LVR_K8S_ETCD_PEER_PORT', 39380),
    controllerManager: envInt('LVR_K8S_CONTROLLER_MANAGER_PORT', 39257),
    scheduler: envInt('LVR_K8S_SCHEDULER_PORT', 39259),
    kwok: envInt('LVR_K8S_KWOK_PORT', 39247),
  };
}

function componentLog(name) {
  return path.join(stateDir, name, `${name}.log`);
}

export default {
  name: 'k8s',

  provisioned() {
    return binariesProvisioned();
  },

  async provision() {
    if (this.provisioned()) return;
    provisionBinaries();
  },

  async start() {
    if (await this.running()) return this.endpoints();
    const p = ports();
    // Leftovers of a half-started cluster would hold ports or talk to a wiped etcd.
    await stopAll();
    fs.rmSync(clusterDir, { recursive: true, force: true });
    ensureDir(clusterDir);
    const server = `https://127.0.0.1:${p.apiserver}`;
    const creds = writeCredentials(clusterDir, server);
    const started = Date.now();

    const etcd = startComponent('k8s-etcd', binaries.etcd, etcdArgs(p));
    await waitUntil('k8s etcd', () => httpOk(`http://127.0.0.1:${p.etcd}/health`), {
      ...etcd,
      timeoutMs: 60000,
    });

    const apiserver = startComponent('k8s-apiserver', binaries.apiserver, apiserverArgs(p, creds));
    await waitUntil('kube-apiserver', () => apiserverReady(p.apiserver, creds), {
      ...apiserver,
      timeoutMs: 240000,
    });

    const kcm = startComponent(
      'k8s-controller-manager',
      binaries.controllerManager,
      controllerManagerArgs(p, creds),
    );
    const scheduler = startComponent('k8s-scheduler', binaries.scheduler, schedulerArgs(p, creds));
    const kwok = startComponent('k8s-kwok', binaries.kwok, kwokArgs(p, creds), {
      // kwok also reads $KWOK_WORKDIR/kwok.yaml when present; point it at our own dir so only our stages load.
      env: { KWOK_WORKDIR: clusterDir },
    });
    await waitUntil('kube-controller-manager', () => httpsHealthy(p.controllerManager), {
      ...kcm,
      timeoutMs: 180000,
    });
    await waitUntil('kube-scheduler', () => httpsHealthy(p.scheduler), { ...scheduler, timeoutMs: 180000 });
    await waitUntil('kwok', () => httpOk(`http://127.0.0.1:${p.kwok}/healthz`), {
      ...kwok,
      timeoutMs: 60000,
    });

    await createNodes(creds.kubeconfig);
    await waitUntil('k8s nodes', () => nodesSchedulable(creds.kubeconfig), { ...kwok, timeoutMs: 120000 });
    log(`k8s: cluster ready in ${((Date.now() - started) / 1000).toFixed(1)}s`);
    return this.endpoints();
  },

  async stop() {
    return stopAll();
  },

  endpoints() {
    const p = ports();
    const pids = Object.fromEntries(COMPONENTS.map((c) => [c.replace(/^k8s-/, ''), readPid(c)]));
    return {
      server: `https://127.0.0.1:${p.apiserver}`,
      version: K8S_VERSION,
      kubeconfig: credentialPaths(clusterDir).kubeconfig,
      nodes: nodeNames(),
      stages: stagesFile,
      pid: readPid('k8s-apiserver'),
      log: componentLog('k8s-apiserver'),
      pids,
      logs: Object.fromEntries(COMPONENTS.map((c) => [c.replace(/^k8s-/, ''), componentLog(c)])),
    };
  },

  async running() {
    return COMPONENTS.every((c) => isAlive(readPid(c))) && (await portOpen(ports().apiserver));
  },

  env(endpoints) {
    return { KUBECONFIG: endpoints.kubeconfig };
  },
};

function startComponent(name, binary, args, options) {
  ensureDir(path.join(stateDir, name));
  fs.rmSync(componentLog(name), { force: true });
  return startDetached(name, binary, args, options);
}

async function stopAll() {
  let any = false;
  for (const name of [...COMPONENTS].reverse()) {
    if (await stopProcess(name, 15000)) any = true;
  }
  return any;
}

function etcdArgs(p) {
  const client = `http://127.0.0.1:${p.etcd}`;
  const peer = `http://127.0.0.1:${p.etcdPeer}`;
  return [
    '--name=lvr-test',
    `--data-dir=${path.join(clusterDir, 'etcd-data')}`,
    `--listen-client-urls=${client}`,
    `--advertise-client-urls=${client}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=lvr-test=${peer}`,
    // Throwaway test data: skipping fsync keeps etcd from stalling the API server on a busy disk.
    '--unsafe-no-fsync',
    '--log-level=warn',
  ];
}

function apiserverArgs(p, creds) {
  return [
    `--etcd-servers=http://127.0.0.1:${p.etcd}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--secure-port=${p.apiserver}`,
    `--cert-dir=${creds.certDir}`,
    `--token-auth-file=${creds.tokenFile}`,
    '--authorization-mode=RBAC',
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${creds.serviceAccountPub}`,
    `--service-account-signing-key-file=${creds.serviceAccountKey}`,
    '--service-cluster-ip-range=10.96.0.0/16',
    '--allow-privileged=true',
    // Endpoints may not point at loopback, and no pod could reach this API server anyway.
    '--endpoint-reconciler-type=none',
    '--enable-priority-and-fairness=false',
    '--profiling=false',
  ];
}

function componentAuthArgs(creds) {
  return [
    `--kubeconfig=${creds.kubeconfig}`,
    `--authentication-kubeconfig=${creds.kubeconfig}`,
    `--authorization-kubeconfig=${creds.kubeconfig}`,
    '--bind-address=127.0.0.1',
    '--leader-elect=false',
    '--profiling=false',
  ];
}

function controllerManagerArgs(p, creds) {
  return [
    ...componentAuthArgs(creds),
    `--secure-port=${p.controllerManager}`,
    `--service-account-private-key-file=${creds.serviceAccountKey}`,
    `--root-ca-file=${creds.caFile}`,
    '--use-service-account-credentials=false',
  ];
}

function schedulerArgs(p, creds) {
  return [...componentAuthArgs(creds), `--secure-port=${p.scheduler}`];
}

function kwokArgs(p, creds) {
  return [
    `--kubeconfig=${creds.kubeconfig}`,
    `--config=${stagesFile}`,
    '--manage-all-nodes=false',
    '--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake',
    '--cidr=10.244.0.0/16',
    '--node-ip=10.240.0.1',
    `--server-address=127.0.0.1:${p.kwok}`,
    '--node-lease-duration-seconds=40',
  ];
}

function request(url, options = {}) {
  return new Promise((resolve, reject) => {
    const get = url.startsWith('https:') ? https.get : http.get;
    const req = get(url, { timeout: 5000, ...options }, (response) => {
      response.resume();
      response.on('end', () => resolve({ status: response.statusCode }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`timeout: ${url}`)));
  });
}

async function httpOk(url) {
  const { status } = await request(url);
  return status === 200;
}

async function apiserverReady(port, creds) {
  if (!fs.existsSync(creds.caFile)) return false;
  const { status } = await request(`https://127.0.0.1:${port}/readyz`, {
    ca: fs.readFileSync(creds.caFile),
    headers: { Authorization: `Bearer ${readToken(clusterDir)}` },
  });
  return status === 200;
}

/** The controller-manager and scheduler serve /healthz with a throwaway self-signed certificate; nothing is sent. */
async function httpsHealthy(port) {
  const { status } = await request(`https://127.0.0.1:${port}/healthz`, { rejectUnauthorized: false });
  return status === 200;
}

function nodeNames() {
  return fs
    .readFileSync(nodesFile, 'utf8')
    .split(/^---$/m)
    .map((doc) => /^ {2}name: (\S+)/m.exec(doc)?.[1])
    .filter(Boolean);
}

async function coreApi(kubeconfig) {
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfig);
  return { k8s, core: kc.makeApiClient(k8s.CoreV1Api) };
}

async function createNodes(kubeconfig) {
  const { k8s, core } = await coreApi(kubeconfig);
  for (const node of k8s.loadAllYaml(fs.readFileSync(nodesFile, 'utf8'))) {
    await core.createNode({ body: node });
  }
}

/** Ready, and the node lifecycle controller has lifted its not-ready taint, so the scheduler will use them. */
async function nodesSchedulable(kubeconfig) {
  const { core } = await coreApi(kubeconfig);
  const { items } = await core.listNode();
  const wanted = nodeNames();
  return wanted.every((name) => {
    const node = items.find((n) => n.metadata?.name === name);
    const ready = node?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
    const tainted = node?.spec?.taints?.some((t) => t.key.startsWith('node.kubernetes.io/'));
    return ready && !tainted;
  });
}
