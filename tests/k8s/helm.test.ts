// Helm against the stack's cluster: lint, server-side validation of rendered manifests, install and uninstall.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { requireEnv } from '../support/env';
import { type Cluster, condition, connect, createNamespace, deleteNamespace } from './cluster';

const chart = path.join(__dirname, 'fixtures', 'training-run');

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe('Helm on the test cluster', () => {
  let cluster: Cluster;
  let namespace: string;
  let helmBin: string;
  let kubectlBin: string;
  let home: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    helmBin = requireEnv('LVR_HELM_BIN');
    kubectlBin = requireEnv('LVR_KUBECTL_BIN');
    cluster = connect();
    namespace = await createNamespace(cluster, 'helm');
    // Keep Helm's and kubectl's caches and config out of the user's home.
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'lvr-helm-'));
    env = {
      ...process.env,
      HELM_CACHE_HOME: path.join(home, 'cache'),
      HELM_CONFIG_HOME: path.join(home, 'config'),
      HELM_DATA_HOME: path.join(home, 'data'),
      KUBECACHEDIR: path.join(home, 'kube-cache'),
    };
  });

  after(async () => {
    if (cluster && namespace) await deleteNamespace(cluster, namespace);
    if (home) fs.rmSync(home, { recursive: true, force: true });
  });

  function run(bin: string, args: string[], input?: string): Promise<Result> {
    return new Promise((resolve, reject) => {
      const child = spawn(bin, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
      child.stdin.end(input ?? '');
    });
  }

  async function ok(bin: string, args: string[], input?: string): Promise<string> {
    const result = await run(bin, args, input);
    assert.equal(
      result.code,
      0,
      `${path.basename(bin)} ${args.join(' ')} failed:\n${result.stderr}${result.stdout}`,
    );
    return result.stdout;
  }

  async function serverDryRun(extraArgs: string[]): Promise<Result> {
    const manifests = await ok(helmBin, ['template', 'run-a', chart, '--namespace', namespace, ...extraArgs]);
    return run(kubectlBin, ['apply', '--dry-run=server', '--namespace', namespace, '-f', '-'], manifests);
  }

  it('lints the chart', async () => {
    await ok(helmBin, ['lint', chart, '--strict', '--kube-version', '1.36.0']);
  });

  it('validates rendered manifests with a server-side dry run, catching what templating lets through', async () => {
    const valid = await serverDryRun([]);
    assert.equal(valid.code, 0, valid.stderr);
    assert.match(valid.stdout, /job\.batch\/run-a-sft created \(server dry run\)/);

    const invalid = await serverDryRun(['--set', 'gpus=-1']);
    assert.notEqual(invalid.code, 0, 'a negative GPU limit is rejected');
    assert.match(invalid.stderr, /must be greater than or equal to 0/);

    const { items } = await cluster.batch.listNamespacedJob({ namespace });
    assert.equal(items.length, 0, 'a dry run persists nothing');
  });

  it('installs a release that runs its GPU Job to completion, then uninstalls it', async () => {
    await ok(helmBin, [
      'install',
      'run-b',
      chart,
      '--namespace',
      namespace,
      '--wait',
      '--wait-for-jobs',
      '--timeout',
      '120s',
    ]);
    const status = JSON.parse(await ok(helmBin, ['status', 'run-b', '--namespace', namespace, '-o', 'json']));
    assert.equal(status.info.status, 'deployed');

    const job = await cluster.batch.readNamespacedJob({ namespace, name: 'run-b-sft' });
    assert.ok(condition(job, 'Complete'), 'helm --wait-for-jobs returned after the Job completed');
    const config = await cluster.core.readNamespacedConfigMap({ namespace, name: 'run-b-config' });
    assert.deepEqual(JSON.parse(config.data!['run.json']), { mode: 'sft', gpus: 1 });

    await ok(helmBin, [
      'uninstall',
      'run-b',
      '--namespace',
      namespace,
      '--wait',
      '--cascade',
      'foreground',
      '--timeout',
      '120s',
    ]);
    const releases = JSON.parse(await ok(helmBin, ['list', '--namespace', namespace, '-o', 'json']));
    assert.deepEqual(releases, []);
    await assert.rejects(cluster.batch.readNamespacedJob({ namespace, name: 'run-b-sft' }), { code: 404 });
    await assert.rejects(cluster.core.readNamespacedConfigMap({ namespace, name: 'run-b-config' }), {
      code: 404,
    });
  });
});
