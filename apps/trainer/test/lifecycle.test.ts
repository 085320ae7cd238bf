// Unit test of the lifecycle rules with an in-memory store and executor (pure logic; the integration suites under
// tests/trainer run the same rules against the real cluster and Kafka).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TrainingRequest } from '@lvr/contracts';
import type { WorkloadStatus } from '@lvr/k8s';
import type { MessagePublisher } from '@lvr/messaging';
import type { CreateOutcome, Executor, RunStore } from '../src/executors/executor';
import { RunLifecycle } from '../src/runs/lifecycle';
import { type RunRecord, type RunStatus, emptyStatus } from '../src/runs/run-record';

class MemoryStore implements RunStore {
  readonly records = new Map<string, RunRecord>();
  async create(request: TrainingRequest, specHash: string): Promise<CreateOutcome> {
    const existing = this.records.get(request.runId);
    if (existing) return { created: false, record: existing };
    const record: RunRecord = {
      runId: request.runId,
      stage: request.stage,
      request,
      specHash,
      createdAt: new Date().toISOString(),
      status: emptyStatus(),
    };
    this.records.set(request.runId, record);
    return { created: true, record };
  }
  async get(runId: string) {
    return this.records.get(runId);
  }
  async list() {
    return [...this.records.values()];
  }
  async saveStatus(runId: string, status: RunStatus) {
    this.records.get(runId)!.status = JSON.parse(JSON.stringify(status));
  }
}

function setup(infeasible?: string) {
  const store = new MemoryStore();
  const started: string[] = [];
  const stopped: string[] = [];
  const executor: Executor = {
    kind: 'kubernetes',
    store,
    infeasible: async () => infeasible,
    start: async (record) => void started.push(record.runId),
    stop: async (runId) => void stopped.push(runId),
    watch: async () => undefined,
    workload: () => undefined,
    logs: async () => 'line 1\nline 2',
    admit: async () => undefined,
    close: async () => undefined,
  };
  const sent: Array<{ id?: string; type: string; reason?: string; data?: Record<string, unknown> }> = [];
  const publisher = {
    publish: async (_topic: string, _key: string, body: { id?: string; type: string }) => {
      sent.push(body);
      return body;
    },
  } as unknown as MessagePublisher;
  const lifecycle = new RunLifecycle(executor, publisher, {
    unschedulableGraceMs: 1000,
    eventsTopic: 'events',
  });
  return { store, started, stopped, sent, lifecycle, types: () => sent.map((m) => m.type) };
}

const request = (runId: string, stage: 'sft' | 'grpo' = 'sft'): TrainingRequest =>
  ({
    apiVersion: 'lvr.training/v1',
    id: `msg-${Math.random()}`,
    timestamp: new Date().toISOString(),
    runId,
    stage,
    model: { uri: 's3://m' },
    data: { uri: 's3://d' },
    resources: { gpusPerNode: 1 },
    checkpoint: { uri: 's3://c', everySteps: 10 },
    output: { bundleUri: 's3://b' },
  }) as TrainingRequest;

const workload = (phase: WorkloadStatus['phase'], extra: Partial<WorkloadStatus> = {}): WorkloadStatus => ({
  phase,
  retries: [],
  ...extra,
});

describe('run lifecycle', () => {
  it('reports each transition once, in order, with ids derived from run and transition', async () => {
    const t = setup();
    assert.equal(await t.lifecycle.submit(request('r1')), 'created');
    assert.equal(await t.lifecycle.submit(request('r1')), 'duplicate');
    await t.lifecycle.observe('r1', workload('Running'));
    await t.lifecycle.observe('r1', workload('Running'));
    await t.lifecycle.observe('r1', workload('Running', { retries: [{ pod: 'p0', reason: 'evicted' }] }));
    await t.lifecycle.observe('r1', workload('Succeeded', { retries: [{ pod: 'p0', reason: 'evicted' }] }));
    await t.lifecycle.observe('r1', workload('Succeeded', { retries: [{ pod: 'p0', reason: 'evicted' }] }));
    assert.deepEqual(t.types(), [
      'Accepted',
      'Scheduled',
      'Running',
      'Retrying',
      'Scheduled',
      'Running',
      'Succeeded',
    ]);
    assert.deepEqual(
      t.sent.map((m) => m.id),
      [
        'r1.Accepted',
        'r1.Scheduled#0',
        'r1.Running#0',
        'r1.Retrying#1',
        'r1.Scheduled#1',
        'r1.Running#1',
        'r1.Succeeded',
      ],
    );
    assert.deepEqual(t.started, ['r1', 'r1'], 'a duplicate only re-ensures the workload');
    assert.equal(t.store.records.get('r1')!.status.terminal!.phase, 'Succeeded');
  });

  it('rejects the same run id with a different spec and leaves the run alone', async () => {
    const t = setup();
    await t.lifecycle.submit(request('r2'));
    assert.equal(await t.lifecycle.submit(request('r2', 'grpo')), 'conflict');
    assert.deepEqual(t.types(), ['Accepted', 'Rejected']);
    assert.equal(t.store.records.get('r2')!.stage, 'sft');
  });

  it('fails an infeasible run before starting anything', async () => {
    const t = setup('unknown priority class "x"');
    await t.lifecycle.submit(request('r3'));
    assert.deepEqual(t.types(), ['Accepted', 'Failed']);
    assert.equal(t.sent[1].reason, 'unknown priority class "x"');
    assert.deepEqual(t.started, []);
  });

  it('fails an unschedulable run only after the grace period, then stops its workload', async () => {
    const t = setup();
    await t.lifecycle.submit(request('r4'));
    const now = new Date().toISOString();
    await t.lifecycle.observe(
      'r4',
      workload('Pending', { unschedulable: { since: now, message: 'Insufficient gpu' } }),
    );
    assert.deepEqual(t.types(), ['Accepted']);
    const old = new Date(Date.now() - 5000).toISOString();
    await t.lifecycle.observe(
      'r4',
      workload('Pending', { unschedulable: { since: old, message: 'Insufficient gpu' } }),
    );
    assert.deepEqual(t.types(), ['Accepted', 'Failed']);
    assert.equal(t.sent[1].reason, 'Unschedulable: Insufficient gpu');
    assert.deepEqual(t.stopped, ['r4']);
  });

  it('cancels once; nothing is reported after the end; a failure carries exit code and log lines', async () => {
    const t = setup();
    await t.lifecycle.submit(request('r5'));
    await t.lifecycle.cancel('r5');
    await t.lifecycle.cancel('r5');
    await t.lifecycle.observe('r5', workload('Running'));
    assert.deepEqual(t.types(), ['Accepted', 'Cancelled']);
    await t.lifecycle.submit(request('r6'));
    await t.lifecycle.observe('r6', workload('Failed', { reason: 'exit 78', exitCode: 78 }));
    const failed = t.sent.at(-1)!;
    assert.equal(failed.type, 'Failed');
    assert.equal(failed.data!.exitCode, 78);
    assert.deepEqual(failed.data!.lastLogLines, ['line 1', 'line 2']);
  });

  it('forwards worker progress and checkpoints (same ids) and keeps the bundle for Succeeded', async () => {
    const t = setup();
    await t.lifecycle.submit(request('r7'));
    const event = (type: string, data: Record<string, unknown>) =>
      ({
        apiVersion: 'lvr.training/v1',
        id: `w-${type}`,
        timestamp: new Date().toISOString(),
        runId: 'r7',
        type,
        data,
      }) as never;
    await t.lifecycle.mergeWorkerEvent(event('Progress', { step: 3, totalSteps: 10, loss: 1.5 }));
    await t.lifecycle.mergeWorkerEvent(event('CheckpointSaved', { step: 3, uri: 's3://c/step-3' }));
    await t.lifecycle.mergeWorkerEvent(
      event('Succeeded', { bundleUri: 's3://b', modelId: 'm', version: 'v' }),
    );
    await t.lifecycle.observe('r7', workload('Succeeded'));
    assert.deepEqual(t.types(), [
      'Accepted',
      'Progress',
      'CheckpointSaved',
      'Scheduled',
      'Running',
      'Succeeded',
    ]);
    assert.equal(t.sent[1].id, 'w-Progress');
    assert.equal(t.lifecycle.progressOf('r7'), undefined, 'progress is dropped once the run ended');
    assert.equal(t.sent.at(-1)!.data!.bundleUri, 's3://b');
    assert.deepEqual(
      t.store.records.get('r7')!.status.checkpoints.map((c) => c.step),
      [3],
    );
  });
});
