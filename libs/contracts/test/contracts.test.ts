import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  ALL_TOPICS,
  DeadLetter,
  TrainingRequest,
  generateSchemas,
  parseMessage,
  describeErrors,
  ModelPublished,
} from '@lvr/contracts';

export function validTrainingRequest(): Record<string, unknown> {
  return {
    apiVersion: 'lvr.training/v1',
    id: 'msg-1',
    timestamp: '2026-11-26T07:00:00Z',
    runId: 'sft-demo-1',
    stage: 'sft',
    model: { uri: 's3://models/qwen2.5-vl-3b' },
    data: { uri: 's3://data/stage1/meta.json' },
    hyperparameters: { learningRate: 1e-5, maxSteps: 100, lossLvrLambda: 0.1 },
    resources: { gpusPerNode: 8, nodes: 1 },
    checkpoint: { uri: 's3://runs/sft-demo-1/checkpoints', everySteps: 50 },
    output: { bundleUri: 's3://models/sft-demo-1' },
  };
}

describe('contracts', () => {
  test('topic names are the seven of the design', () => {
    assert.deepEqual([...ALL_TOPICS].sort(), [
      'lvr.deadletter',
      'lvr.evaluation.requests',
      'lvr.evaluation.results',
      'lvr.models.published',
      'lvr.training.commands',
      'lvr.training.events',
      'lvr.training.requests',
    ]);
  });

  test('a valid training request parses into its class', () => {
    const result = parseMessage(TrainingRequest, Buffer.from(JSON.stringify(validTrainingRequest())));
    assert.equal(result.ok, true, result.ok ? '' : describeErrors(result.errors));
    if (result.ok) {
      assert.ok(result.value instanceof TrainingRequest);
      assert.equal(result.value.hyperparameters?.learningRate, 1e-5);
    }
  });

  test('every problem is reported with its field path', () => {
    const bad = validTrainingRequest();
    bad.runId = 'Bad_Run';
    bad.stage = 'pretrain';
    (bad.hyperparameters as Record<string, unknown>).learningRate = -1;
    (bad.checkpoint as Record<string, unknown>).everySteps = 0;
    bad.typo = true;
    const result = parseMessage(TrainingRequest, bad);
    assert.equal(result.ok, false);
    if (!result.ok) {
      const paths = result.errors.map((e) => e.path).sort();
      assert.deepEqual(paths, [
        'checkpoint.everySteps',
        'hyperparameters.learningRate',
        'runId',
        'stage',
        'typo',
      ]);
    }
  });

  test('non-JSON and non-object payloads get a clear reason', () => {
    const notJson = parseMessage(TrainingRequest, Buffer.from('{oops'));
    assert.equal(notJson.ok, false);
    if (!notJson.ok) assert.match(notJson.errors[0].message, /not valid JSON/);
    const array = parseMessage(TrainingRequest, '[1,2]');
    assert.equal(array.ok, false);
    if (!array.ok) assert.match(array.errors[0].message, /JSON object/);
  });

  test('a wrong apiVersion is rejected', () => {
    const result = parseMessage(ModelPublished, {
      apiVersion: 'lvr.models/v0',
      id: 'x',
      timestamp: '2026-11-26T07:00:00Z',
      modelId: 'm',
      version: '1',
      bundleUri: 's3://b/m',
    });
    assert.equal(result.ok, false);
    if (!result.ok)
      assert.deepEqual(
        result.errors.map((e) => e.path),
        ['apiVersion'],
      );
  });

  test('dead letters keep the payload and reason', () => {
    const result = parseMessage(DeadLetter, {
      apiVersion: 'lvr.deadletter/v1',
      id: 'dl-1',
      timestamp: '2026-11-26T07:00:00Z',
      sourceTopic: 'lvr.training.requests',
      partition: 0,
      offset: '42',
      reason: 'stage: must be one of sft, grpo',
      payload: '{"stage":"x"}',
      consumer: 'trainer',
    });
    assert.equal(result.ok, true);
  });

  test('the committed JSON Schemas equal the ones generated from the DTOs', () => {
    const dir = path.join(__dirname, '..', 'schema');
    for (const [name, schema] of Object.entries(generateSchemas())) {
      const committed = JSON.parse(fs.readFileSync(path.join(dir, `${name}.schema.json`), 'utf8'));
      assert.deepEqual(committed, schema, `${name}.schema.json is stale: run npm run contracts:schema`);
    }
  });

  test('the training-request schema requires what the DTO requires', () => {
    const schema = generateSchemas()['training-request'] as { required: string[] };
    assert.deepEqual([...schema.required].sort(), [
      'apiVersion',
      'checkpoint',
      'data',
      'id',
      'model',
      'output',
      'resources',
      'runId',
      'stage',
      'timestamp',
    ]);
  });
});
