import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { TrainingRequest, parseMessage } from '@lvr/contracts';
import {
  Manifest,
  chartDir,
  helm,
  kubectl,
  ok,
  podSpecs,
  render,
  repoRoot,
  restrictedViolations,
  useRestrictedNamespace,
} from './helm';

const chart = chartDir('lvr-training-run');
const example = (name: string) => path.join(chart, 'examples', name);
const schemaScript = path.join(repoRoot, 'scripts', 'charts', 'training-run-schema.mjs');

const requestOf = (manifests: Manifest[]) =>
  JSON.parse(manifests.find((m) => m.kind === 'ConfigMap')!.data!['request.json']) as Record<string, unknown>;
const hookJob = (manifests: Manifest[], component: string) =>
  manifests.find(
    (m) => m.kind === 'Job' && m.metadata.labels?.['app.kubernetes.io/component'] === component,
  )!;

describe('lvr-training-run chart: values schema derived from the contract', () => {
  test('the committed values.schema.json matches the training-request contract', () => {
    const check = spawnSync(process.execPath, [schemaScript, '--check'], { encoding: 'utf8' });
    assert.equal(check.status, 0, check.stderr);
  });

  test('the drift check fails when the contract changes and the chart schema is not regenerated', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lvr-schema-'));
    try {
      const contractFile = path.join(repoRoot, 'libs', 'contracts', 'schema', 'training-request.schema.json');
      const contract = JSON.parse(fs.readFileSync(contractFile, 'utf8'));
      contract.definitions.ResourceSpec.properties.gpusPerNode.maximum = 32;
      fs.writeFileSync(path.join(dir, 'contract.json'), JSON.stringify(contract));
      const check = spawnSync(
        process.execPath,
        [schemaScript, '--check', '--contract', path.join(dir, 'contract.json')],
        { encoding: 'utf8' },
      );
      assert.equal(check.status, 1);
      assert.match(check.stderr, /values\.schema\.json is stale: run npm run charts:schema/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('every run field of the contract is a value, with the same rules', () => {
    const schema = JSON.parse(fs.readFileSync(path.join(chart, 'values.schema.json'), 'utf8'));
    const contract = JSON.parse(
      fs.readFileSync(
        path.join(repoRoot, 'libs', 'contracts', 'schema', 'training-request.schema.json'),
        'utf8',
      ),
    );
    for (const field of ['stage', 'model', 'data', 'hyperparameters', 'resources', 'checkpoint', 'output'])
      assert.deepEqual(schema.properties[field], contract.properties[field], field);
    assert.deepEqual(schema.definitions, contract.definitions);
    assert.equal(schema.properties.runId.pattern, contract.properties.runId.pattern);
    assert.equal(schema.properties.id, undefined, 'the envelope id is stamped by the hook');
  });
});

describe('lvr-training-run chart: rendering', () => {
  for (const name of ['sft.yaml', 'grpo.yaml']) {
    test(`lints clean with examples/${name}`, async () => {
      const out = await ok(helm(['lint', chart, '--strict', '-f', example(name)]), 'helm lint');
      assert.match(out, /0 chart\(s\) failed/);
    });
  }

  const invalid: [string, RegExp][] = [
    ['missing-output.yaml', /missing property 'output'/],
    ['unknown-stage.yaml', /\/stage.*must be one of 'sft', 'grpo'/],
    ['typo-hyperparameter.yaml', /\/hyperparameters.*'learningrate' not allowed/],
    ['too-many-gpus.yaml', /\/resources\/gpusPerNode.*maximum/],
    ['bad-run-id.yaml', /\/runId.*does not match pattern/],
  ];
  for (const [file, message] of invalid) {
    test(`the schema rejects examples/invalid/${file} before anything is rendered`, async () => {
      const result = await helm(['template', 'run-x', chart, '-f', example(path.join('invalid', file))]);
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, message);
      assert.equal(result.stdout, '');
    });
  }

  test('an empty install is refused, naming every missing field', async () => {
    const result = await helm(['template', 'run-x', chart]);
    assert.notEqual(result.code, 0);
    assert.match(
      result.stderr,
      /missing properties 'stage', 'model', 'data', 'resources', 'checkpoint', 'output'/,
    );
  });

  test('the published request is the contract message, with the release name as run id', async () => {
    const manifests = await render('lvr-training-run', 'sft-run-7', ['-f', example('sft.yaml')]);
    const request = requestOf(manifests);
    assert.equal(request.runId, 'sft-run-7');
    assert.equal(request.apiVersion, 'lvr.training/v1');
    const parsed = parseMessage(TrainingRequest, {
      ...request,
      id: 'm1',
      timestamp: new Date().toISOString(),
    });
    assert.ok(parsed.ok, JSON.stringify(parsed));
    assert.deepEqual(request.hyperparameters, { learningRate: 1e-5, maxSteps: 2000, lossLvrLambda: 0.1 });
  });

  test('runId overrides the release name', async () => {
    const manifests = await render('lvr-training-run', 'whatever', ['-f', example('grpo.yaml')]);
    assert.equal(requestOf(manifests).runId, 'grpo-demo-1');
    for (const m of manifests)
      assert.equal(m.metadata.labels?.['lvr.dev/run-id'], 'grpo-demo-1', m.metadata.name);
  });

  test('install submits and waits, uninstall cancels: hook Jobs around the submit CLI', async () => {
    const manifests = await render('lvr-training-run', 'run-h', [
      '-f',
      example('sft.yaml'),
      '--set',
      'submit.kafkaBrokers=kafka-0.kafka:9092',
      '--set',
      'submit.image.digest=sha256:' + 'a'.repeat(64),
    ]);
    const submit = hookJob(manifests, 'submit');
    const cancel = hookJob(manifests, 'cancel');
    assert.equal(submit.metadata.annotations?.['helm.sh/hook'], 'post-install');
    assert.equal(cancel.metadata.annotations?.['helm.sh/hook'], 'pre-delete');
    const submitPod = (submit.spec as { template: { spec: k8s.V1PodSpec } }).template.spec;
    const container = submitPod.containers[0];
    assert.equal(container.image, 'ghcr.io/lvr-platform/lvr-node@sha256:' + 'a'.repeat(64));
    assert.deepEqual(container.args?.slice(0, 4), [
      'node',
      'dist/apps/trainer/src/cli/submit.js',
      '--request',
      '/etc/lvr/run/request.json',
    ]);
    assert.deepEqual(
      (cancel.spec as { template: { spec: k8s.V1PodSpec } }).template.spec.containers[0].args?.slice(2, 5),
      ['--cancel', '--run-id', 'run-h'],
    );
    assert.equal(container.env?.find((e) => e.name === 'LVR_KAFKA_BROKERS')?.value, 'kafka-0.kafka:9092');
    assert.equal((submit.spec as { backoffLimit: number }).backoffLimit, 0, 'a hook never publishes twice');
    for (const { owner, spec } of podSpecs(manifests))
      assert.deepEqual(restrictedViolations(owner, spec), []);
  });

  test('an upgrade is refused with a clear message', async () => {
    const result = await helm(['template', 'run-u', chart, '-f', example('sft.yaml'), '--is-upgrade']);
    assert.notEqual(result.code, 0);
    assert.match(
      result.stderr,
      /release run-u already submitted training run run-u; a run cannot be changed/,
    );
  });

  test('NOTES say how to follow the run', async () => {
    const out = await ok(
      helm(['install', 'run-n', chart, '-f', example('sft.yaml'), '--dry-run=client', '--namespace', 'lvr']),
      'helm install --dry-run',
    );
    assert.match(out, /kubectl get jobs,pods --all-namespaces -l lvr\.dev\/run-id=run-n/);
    assert.match(out, /lvr\.training\.events with key run-n/);
  });
});

describe('lvr-training-run chart: against the real API server', () => {
  const namespace = useRestrictedNamespace('run-chart');

  for (const name of ['sft.yaml', 'grpo.yaml']) {
    test(`examples/${name}: every object (hooks included) passes server-side validation and restricted Pod Security`, async () => {
      const manifests = await ok(
        helm(['template', 'run-d', chart, '--namespace', namespace.name(), '-f', example(name)]),
        'helm template',
      );
      const applied = await kubectl(
        ['apply', '--dry-run=server', '--namespace', namespace.name(), '-f', '-'],
        manifests,
      );
      assert.equal(applied.code, 0, applied.stderr);
      assert.match(applied.stdout, /configmap\/run-d-request created \(server dry run\)/);
      assert.match(applied.stdout, /job\.batch\/run-d-submit created \(server dry run\)/);
      assert.doesNotMatch(applied.stderr, /would violate PodSecurity/);
    });
  }
});
