// Pinned control-plane binaries for the test cluster, built from the Go module proxy into the cache:
// etcd and the Kubernetes components through wrapper modules under infra/k8s/ (their go.mod/go.sum pin every
// dependency), kwok with `go install`. Each set is built into a `.partial` dir and renamed when complete.
import fs from 'node:fs';
import path from 'node:path';
import { cacheDir, capture, ensureDir, repoRoot, runStep, which } from '../lib.mjs';

export const K8S_VERSION = 'v1.36.3';
export const ETCD_VERSION = 'v3.6.16';
export const KWOK_VERSION = 'v0.8.0';

const binRoot = path.join(cacheDir, 'bin');
const dirs = {
  kubernetes: path.join(binRoot, `kubernetes-${K8S_VERSION}`),
  etcd: path.join(binRoot, `etcd-${ETCD_VERSION}`),
  kwok: path.join(binRoot, `kwok-${KWOK_VERSION}`),
};

export const binaries = {
  etcd: path.join(dirs.etcd, 'etcd'),
  apiserver: path.join(dirs.kubernetes, 'kube-apiserver'),
  controllerManager: path.join(dirs.kubernetes, 'kube-controller-manager'),
  scheduler: path.join(dirs.kubernetes, 'kube-scheduler'),
  kwok: path.join(dirs.kwok, 'kwok'),
};

const KUBE_COMMANDS = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler'];

export function binariesProvisioned() {
  return Object.values(binaries).every((file) => fs.existsSync(file));
}

export function provisionBinaries() {
  const go = which('go') || '/usr/local/go/bin/go';
  if (!fs.existsSync(go) && !which('go')) throw new Error('Go toolchain not found (need go >= 1.26 on PATH)');
  // GOTOOLCHAIN=local: build with the installed Go instead of fetching the one go.mod names.
  const goEnv = { CGO_ENABLED: '0', GOTOOLCHAIN: 'local', GOFLAGS: '-buildvcs=false -mod=readonly' };

  buildSet('etcd', dirs.etcd, (out) =>
    runStep(
      'k8s-etcd-build',
      go,
      ['build', '-trimpath', '-ldflags', '-s -w', '-o', path.join(out, 'etcd'), 'go.etcd.io/etcd/server/v3'],
      { cwd: path.join(repoRoot, 'infra', 'k8s', 'etcd'), env: goEnv },
    ),
  );
  verifyVersion(binaries.etcd, ['--version'], ETCD_VERSION.slice(1));

  buildSet('kwok', dirs.kwok, (out) =>
    runStep(
      'k8s-kwok-build',
      go,
      ['install', '-trimpath', '-ldflags', '-s -w', `sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}`],
      { env: { ...goEnv, GOFLAGS: '-buildvcs=false', GOBIN: out } },
    ),
  );
  verifyVersion(binaries.kwok, ['--version'], KWOK_VERSION.slice(1));

  buildSet('kubernetes', dirs.kubernetes, (out) =>
    runStep(
      'k8s-kube-build',
      go,
      [
        'build',
        '-trimpath',
        '-ldflags',
        kubeLdflags(),
        '-o',
        `${out}/`,
        ...KUBE_COMMANDS.map((c) => `k8s.io/kubernetes/cmd/${c}`),
      ],
      { cwd: path.join(repoRoot, 'infra', 'k8s', 'kube'), env: goEnv },
    ),
  );
  for (const file of [binaries.apiserver, binaries.controllerManager, binaries.scheduler]) {
    verifyVersion(file, ['--version'], K8S_VERSION);
  }
}

/**
 * Without these -X flags the components report v0.0.0-master, which breaks clients that read /version
 * (Helm's .Capabilities.KubeVersion, chart kubeVersion constraints). Same variables as k8s hack/lib/version.sh.
 */
function kubeLdflags() {
  const [major, minor] = K8S_VERSION.slice(1).split('.');
  const flags = ['-s', '-w'];
  for (const pkg of ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version']) {
    flags.push(
      `-X ${pkg}.gitVersion=${K8S_VERSION}`,
      `-X ${pkg}.gitMajor=${major}`,
      `-X ${pkg}.gitMinor=${minor}`,
      `-X ${pkg}.gitTreeState=clean`,
      `-X ${pkg}.buildDate=1970-01-01T00:00:00Z`,
    );
  }
  return flags.join(' ');
}

function buildSet(name, dir, build) {
  if (fs.existsSync(dir)) return;
  const partial = `${dir}.partial`;
  fs.rmSync(partial, { recursive: true, force: true });
  ensureDir(partial);
  build(partial);
  fs.renameSync(partial, dir);
}

function verifyVersion(binary, args, expected) {
  const { status, stdout, stderr } = capture(binary, args, { encoding: 'utf8' });
  if (status !== 0 || !`${stdout}${stderr}`.includes(expected)) {
    throw new Error(
      `${binary} ${args.join(' ')} does not report ${expected} (got: ${stdout}${stderr}); delete it to rebuild`,
    );
  }
}
