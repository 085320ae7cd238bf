// The embedded default end to end, on CPU: a Kafka request makes the trainer (local executor) run the real worker as
// a child process; the run goes Accepted → Scheduled → Running → Progress/CheckpointSaved → Succeeded, the bundle
// lands in MinIO, lvr.models.published goes out, and a real API process hot-loads the model and answers with it.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Topics } from '@lvr/contracts';
import { requireEnv, uniqueName } from '../support/env';
import { waitForMessage } from '../support/kafka';
import {
  EventRecorder,
  getJson,
  produce,
  runViewInPhase,
  runViewWhen,
  startTrainerProcess,
  type SuiteTopics,
  suiteTopics,
  topicEnv,
  type TrainerProcess,
  trainingRequest,
} from './harness';

const ROOT = path.resolve(__dirname, '../..');

/** A tiny LVR checkpoint and six SFT records with images, uploaded to MinIO by the worker's own storage module. */
const PREPARE = `
import json, sys
from pathlib import Path
import numpy as np
from PIL import Image
from lvr.tiny import save_tiny_checkpoint
from lvr import storage
work, base = Path(sys.argv[1]), sys.argv[2]
save_tiny_checkpoint(work / "model", seed=0)
data = work / "data"; data.mkdir()
rng = np.random.default_rng(0)
for name, (h, w) in {"a.png": (120, 150), "b.png": (90, 90)}.items():
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(data / name)
records = [{"image": "a.png" if i % 2 == 0 else "b.png", "conversations": [
    {"from": "human", "value": f"<image>\\nWhat is in region {i}?"},
    {"from": "gpt", "value": f"<lvr>\\n<answer> thing{i} </answer>"}], "bboxes": [[0.05 * i, 0.1, 0.6, 0.9]]}
    for i in range(6)]
(data / "sft.json").write_text(json.dumps(records))
storage.upload_dir(work / "model", base + "/model")
storage.upload_dir(data, base + "/data")
`;

async function startApi(env: Record<string, string>): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ['-r', '@swc-node/register', 'apps/api/src/main.ts'], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`API did not start:\n${output}`)), 120_000);
    child.stdout!.on('data', (d: Buffer) => {
      output += d.toString();
      const match = /"msg":"listening".*?"url":"([^"]+)"/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.on('exit', (code) => reject(new Error(`API exited with ${code}:\n${output}`)));
  });
  return { url, child };
}

describe('trainer: local executor end to end on CPU', () => {
  let topics: SuiteTopics;
  let events: EventRecorder;
  let trainer: TrainerProcess;
  let api: { url: string; child: ChildProcess } | undefined;
  let work: string;
  const runId = uniqueName('local-e2e');
  const modelId = uniqueName('lvr-tiny');
  const base = `s3://lvr-trainer-tests/${runId}`;

  before(async () => {
    const python = requireEnv('LVR_PYTHON');
    requireEnv('LVR_S3_ENDPOINT');
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'lvr-local-e2e-'));
    const prepared = spawnSync(python, ['-c', PREPARE, work, base], {
      cwd: ROOT,
      env: { ...process.env, PYTHONPATH: path.join(ROOT, 'workers') },
      encoding: 'utf8',
      timeout: 240_000,
    });
    assert.equal(prepared.status, 0, prepared.stderr);
    topics = await suiteTopics('trainer-local');
    events = await EventRecorder.start(topics.events);
    api = await startApi({});
    trainer = await startTrainerProcess({
      ...topicEnv(topics),
      LVR_TRAINER_EXECUTOR: 'local',
      LVR_TRAINER_STATE_DIR: path.join(work, 'state'),
      TRAINER_GROUP_ID: uniqueName('trainer-local'),
      LVR_TRAINER_WORKER_ARGS: '--set min_pixels=3136 --set max_pixels=50176',
      LVR_CACHE_DIR: path.join(work, 'cache'),
    });
  });

  after(async () => {
    await trainer?.stop();
    api?.child.kill('SIGTERM');
    await events?.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it('trains a tiny model from a Kafka request to a published bundle that the API serves', async () => {
    await produce(
      topics.requests,
      runId,
      trainingRequest(runId, {
        model: { uri: `${base}/model` },
        data: { uri: `${base}/data/sft.json` },
        resources: { gpusPerNode: 0 },
        hyperparameters: { maxSteps: 2, gradientAccumulationSteps: 1, learningRate: 1e-3 },
        checkpoint: { uri: `${base}/checkpoints`, everySteps: 1 },
        output: { bundleUri: `${base}/bundle`, modelId },
      }),
    );
    const succeeded = await events.next(runId, 'Succeeded', 540_000);
    const types = events.types(runId);
    const lifecycle = types.filter((t) => t !== 'Progress' && t !== 'CheckpointSaved');
    assert.deepEqual(lifecycle, ['Accepted', 'Scheduled', 'Running', 'Succeeded']);
    assert.ok(types.indexOf('Progress') > types.indexOf('Running'), `progress while running: ${types}`);
    assert.ok(types.includes('CheckpointSaved'));
    assert.equal(succeeded.data!.bundleUri, `${base}/bundle`);
    assert.equal(succeeded.data!.modelId, modelId);

    const published = await waitForMessage<{ modelId: string; bundleUri: string; runId: string }>(
      Topics.modelsPublished,
      (m) => m.modelId === modelId,
    );
    assert.equal(published.bundleUri, `${base}/bundle`);
    assert.equal(published.runId, runId);

    const view = await runViewInPhase<{ phase: string; checkpoints: unknown[]; bundle: { uri: string } }>(
      trainer.url,
      runId,
      'Succeeded',
    );
    assert.equal(view.phase, 'Succeeded');
    assert.ok(view.checkpoints.length >= 1);
    assert.equal(view.bundle.uri, `${base}/bundle`);

    // The API hot-loads the published bundle (it verifies manifest, marker and checksums) and answers with it.
    const deadline = Date.now() + 120_000;
    for (;;) {
      const models = await getJson<{ data: Array<{ id: string }> }>(`${api!.url}/v1/models`);
      if (models.body.data.some((m) => m.id === modelId)) break;
      assert.ok(Date.now() < deadline, `the API never listed ${modelId}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    const res = await fetch(`${api!.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: modelId, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 }),
    });
    const body = (await res.json()) as { model: string; choices: Array<{ message: { content: string } }> };
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.model, modelId);
    assert.equal(body.choices.length, 1);
  });

  it('cancels a running worker: Cancelled, and the checkpoint it saves on SIGTERM is kept', async () => {
    const cancelId = uniqueName('local-cancel');
    await produce(
      topics.requests,
      cancelId,
      trainingRequest(cancelId, {
        model: { uri: `${base}/model` },
        data: { uri: `${base}/data/sft.json` },
        resources: { gpusPerNode: 0 },
        hyperparameters: { maxSteps: 500, gradientAccumulationSteps: 1, learningRate: 1e-3 },
        checkpoint: { uri: `${base}/cancel-checkpoints`, everySteps: 1000 },
        output: { bundleUri: `${base}/cancel-bundle` },
      }),
    );
    await events.next(cancelId, 'Progress', 300_000);
    const res = await fetch(`${trainer.url}/v1/runs/${cancelId}/cancel`, { method: 'POST' });
    assert.equal(res.status, 202);
    await events.next(cancelId, 'Cancelled');
    const saved = await events.next(cancelId, 'CheckpointSaved', 120_000);
    assert.equal(saved.data!.trigger, 'sigterm');
    assert.match(String(saved.data!.uri), new RegExp(`^${base}/cancel-checkpoints/step-\\d+`));
    const view = await runViewWhen<{ phase: string; checkpoints: Array<{ uri: string; trigger: string }> }>(
      trainer.url,
      cancelId,
      (v) => v.phase === 'Cancelled' && v.checkpoints.length > 0,
    );
    assert.equal(view.phase, 'Cancelled');
    assert.deepEqual(
      view.checkpoints.map((c) => c.trigger),
      ['sigterm'],
    );
    assert.ok(!events.types(cancelId).includes('Retrying'), 'a cancelled worker is not restarted');
    assert.ok(!events.types(cancelId).includes('Succeeded'));
  });
});
