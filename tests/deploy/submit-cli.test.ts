// The training-run chart's hook CLI (apps/trainer/src/cli/submit.ts) against the real Kafka and the real trainer.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TRAINING_API_VERSION } from '@lvr/contracts';
import { requireEnv, uniqueName } from '../support/env';
import { ensureTopics, produceRaw, waitForMessage } from '../support/kafka';
import { type Cluster, connect, createNamespace, deleteNamespace } from '../k8s/cluster';
import { Service, runCli, startService } from './processes';

// Topics of this suite alone (the CLI and the trainer read the same overrides): a trainer on the shared topics would
// also act on every other suite's requests.
const suffix = uniqueName('submit');
const Topics = {
  trainingRequests: `lvr.training.requests.${suffix}`,
  trainingCommands: `lvr.training.commands.${suffix}`,
  trainingEvents: `lvr.training.events.${suffix}`,
  workerEvents: `lvr.training.worker-events.${suffix}`,
};

const CLI = 'apps/trainer/src/cli/submit.ts';

function runRequest(runId: string) {
  return {
    runId,
    stage: 'sft',
    model: { uri: 'tiny:0' },
    data: { uri: `s3://datasets/${runId}/train.json` },
    resources: { gpusPerNode: 0 },
    checkpoint: { uri: `s3://checkpoints/${runId}/`, everySteps: 10 },
    output: { bundleUri: `s3://models/${runId}/v1/` },
  };
}

async function publishEvent(runId: string, type: string, reason?: string): Promise<void> {
  await produceRaw(
    Topics.trainingEvents,
    runId,
    JSON.stringify({
      apiVersion: TRAINING_API_VERSION,
      id: uniqueName('evt'),
      timestamp: new Date().toISOString(),
      runId,
      type,
      ...(reason ? { reason } : {}),
    }),
  );
}

describe('submit CLI (training-run hook)', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    await ensureTopics(Object.values(Topics));
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lvr-submit-'));
    env = {
      LVR_KAFKA_BROKERS: requireEnv('LVR_KAFKA_BROKERS'),
      LVR_TERMINATION_LOG: path.join(dir, 'termination'),
      LVR_TRAINER_REQUESTS_TOPIC: Topics.trainingRequests,
      LVR_TRAINER_COMMANDS_TOPIC: Topics.trainingCommands,
      LVR_TRAINER_EVENTS_TOPIC: Topics.trainingEvents,
    };
  });

  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const writeRequest = (runId: string, body: object = runRequest(runId)) => {
    const file = path.join(dir, `${runId}.json`);
    fs.writeFileSync(file, JSON.stringify(body));
    return file;
  };

  describe('with the real trainer', () => {
    let trainer: Service;
    let cluster: Cluster;
    let namespace: string;

    before(async () => {
      cluster = connect();
      namespace = await createNamespace(cluster, 'submit');
      trainer = await startService('apps/trainer/src/main.ts', 'TRAINER_PORT', {
        ...env,
        KUBECONFIG: requireEnv('KUBECONFIG'),
        TRAINER_GROUP_ID: uniqueName('submit-trainer'),
        LVR_TRAINER_EXECUTOR: 'kubernetes',
        LVR_TRAINER_NAMESPACE: namespace,
        LVR_TRAINER_WORKER_EVENTS_TOPIC: Topics.workerEvents,
        LVR_TRAINER_CPU_REQUEST: '100m',
        LVR_TRAINER_MEMORY_REQUEST: '256Mi',
        LVR_TRAINER_MEMORY_LIMIT: '1Gi',
      });
    });

    after(async () => {
      await trainer?.stop();
      if (cluster && namespace) await deleteNamespace(cluster, namespace);
    });

    test('publishes the run and exits 0 once the trainer accepted it', async () => {
      // The published topic is the override: the suite's own.
      const runId = uniqueName('submit');
      const published = waitForMessage<{ runId: string; id: string; stage: string; apiVersion: string }>(
        Topics.trainingRequests,
        (m) => m.runId === runId,
      );
      const result = await runCli(CLI, ['--request', writeRequest(runId), '--timeout-s', '60'], env);
      assert.equal(result.code, 0, result.stderr + result.stdout);
      assert.match(result.stdout, new RegExp(`run ${runId} accepted by the trainer`));
      const message = await published;
      assert.equal(message.apiVersion, TRAINING_API_VERSION);
      assert.equal(message.stage, 'sft');
      assert.match(result.stdout, new RegExp(`message ${message.id} for run ${runId}`));
    });

    test('a rejection fails the submission with the trainer’s reason (exit 1)', async () => {
      const runId = uniqueName('conflict');
      const first = await runCli(CLI, ['--request', writeRequest(runId), '--timeout-s', '60'], env);
      assert.equal(first.code, 0, first.stderr);
      // The same run id with another spec: the trainer refuses it.
      const changed = {
        ...runRequest(runId),
        checkpoint: { uri: `s3://checkpoints/${runId}/`, everySteps: 20 },
      };
      const second = await runCli(
        CLI,
        ['--request', writeRequest(`${runId}-b`, changed), '--timeout-s', '60'],
        env,
      );
      assert.equal(second.code, 1, second.stdout + second.stderr);
      assert.match(
        second.stderr,
        new RegExp(
          `run ${runId} rejected: run id ${runId} already exists with a different spec; use a new run id`,
        ),
      );
      assert.match(fs.readFileSync(env.LVR_TERMINATION_LOG!, 'utf8'), /already exists with a different spec/);
    });

    test('--cancel on an active run: the trainer cancels it and the CLI returns on Cancelled', async () => {
      const runId = uniqueName('active');
      assert.equal((await runCli(CLI, ['--request', writeRequest(runId), '--timeout-s', '60'], env)).code, 0);
      const command = waitForMessage<{ runId: string; command: string }>(
        Topics.trainingCommands,
        (m) => m.runId === runId,
      );
      const result = await runCli(CLI, ['--cancel', '--run-id', runId, '--timeout-s', '120'], env);
      assert.equal(result.code, 0, result.stderr + result.stdout);
      assert.match(result.stdout, new RegExp(`run ${runId} is \\w+: cancel command published`));
      assert.match(result.stdout, new RegExp(`run ${runId} cancelled`));
      assert.equal((await command).command, 'cancel');
      const again = await runCli(CLI, ['--cancel', '--run-id', runId, '--timeout-s', '30'], env);
      assert.equal(again.code, 0);
      assert.match(again.stdout, /already ended \(Cancelled\): nothing to cancel/);
    });

    test('--run-id names the run (the chart passes the release run id)', async () => {
      const runId = uniqueName('named');
      const file = writeRequest('ignored', { ...runRequest('placeholder') });
      const result = await runCli(CLI, ['--request', file, '--run-id', runId, '--timeout-s', '60'], env);
      assert.equal(result.code, 0, result.stderr + result.stdout);
      assert.match(result.stdout, new RegExp(`run ${runId} accepted`));
    });
  });

  test('a request that breaks the contract is refused before anything is published (exit 2)', async () => {
    const runId = uniqueName('bad');
    const file = writeRequest(runId, { ...runRequest(runId), resources: { gpusPerNode: -1 } });
    const result = await runCli(CLI, ['--request', file], env);
    assert.equal(result.code, 2);
    assert.match(
      result.stderr,
      /invalid training request: resources\.gpusPerNode: gpusPerNode must not be less than 0/,
    );
    assert.match(fs.readFileSync(env.LVR_TERMINATION_LOG!, 'utf8'), /resources\.gpusPerNode/);
  });

  test('bad arguments and missing brokers are usage errors (exit 2)', async () => {
    const noRequest = await runCli(CLI, [], env);
    assert.equal(noRequest.code, 2);
    assert.match(noRequest.stderr, /--request FILE is required/);
    const badId = await runCli(CLI, ['--cancel', '--run-id', 'Not_An_Id'], env);
    assert.equal(badId.code, 2);
    assert.match(badId.stderr, /--run-id must be lowercase letters/);
    const noKafka = await runCli(CLI, ['--request', writeRequest('x')], { LVR_KAFKA_BROKERS: '' });
    assert.equal(noKafka.code, 2);
    assert.match(noKafka.stderr, /Kafka not configured/);
  });

  describe('--cancel (pre-delete hook)', () => {
    test('a run that was never accepted has nothing to cancel', async () => {
      const runId = uniqueName('never');
      const result = await runCli(CLI, ['--cancel', '--run-id', runId, '--timeout-s', '30'], env);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, new RegExp(`run ${runId} was never accepted: nothing to cancel`));
    });

    test('a finished run is left alone', async () => {
      const runId = uniqueName('done');
      await publishEvent(runId, 'Accepted');
      await publishEvent(runId, 'Running');
      await publishEvent(runId, 'Succeeded');
      const result = await runCli(CLI, ['--cancel', '--run-id', runId, '--timeout-s', '30'], env);
      assert.equal(result.code, 0, result.stderr);
      assert.match(
        result.stdout,
        new RegExp(`run ${runId} already ended \\(Succeeded\\): nothing to cancel`),
      );
    });

    test('a rejected resubmission does not hide an active run; no answer within the timeout exits 3', async () => {
      const runId = uniqueName('resubmitted');
      await publishEvent(runId, 'Accepted');
      await publishEvent(runId, 'Running');
      await publishEvent(runId, 'Rejected', `run id ${runId} already exists with a different spec`);
      const command = waitForMessage<{ runId: string; command: string }>(
        Topics.trainingCommands,
        (m) => m.runId === runId,
      );
      // No trainer is listening in this part of the suite: the cancel stays unanswered.
      const result = await runCli(CLI, ['--cancel', '--run-id', runId, '--timeout-s', '3'], env);
      assert.equal(result.code, 3, result.stdout + result.stderr);
      assert.match(result.stdout, new RegExp(`run ${runId} is Running: cancel command published`));
      assert.match(
        result.stderr,
        new RegExp(`run ${runId}: no terminal event within 3s after the cancel command`),
      );
      assert.equal((await command).command, 'cancel');
    });
  });
});
