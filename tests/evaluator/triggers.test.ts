import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Cron } from 'croner';
import { ALL_TOPICS, MODELS_API_VERSION, Topics } from '@lvr/contracts';
import { uniqueName } from '../support/env';
import { ensureTopics, produceRaw } from '../support/kafka';
import { colourFixture, tempDir } from './support/fixtures';
import { EvaluatorProcess, startDemoApi, startEvaluatorProcess } from './support/processes';
import {
  ResultMessage,
  collect,
  requestEvaluation,
  sleep,
  testStore,
  waitForResult,
} from './support/harness';
import { publishedEvalId, scheduledEvalId } from '../../apps/evaluator/src/triggers/trigger-ids';
import type { ServerProcess } from '../../apps/api/test/support/server-process';

const ZONE = 'Asia/Kolkata';

/** Hours (in `zone`) of now and the next hour, so the schedule matches for the whole test only in that zone. */
function hoursIn(zone: string): string {
  const hour = (d: Date): number =>
    Number(new Intl.DateTimeFormat('en-GB', { timeZone: zone, hour: '2-digit', hourCycle: 'h23' }).format(d));
  const now = new Date();
  return [...new Set([hour(now), hour(new Date(now.getTime() + 3600_000))])].join(',');
}

interface IndexEntry {
  evalId: string;
  state: string;
  schedule?: string;
  trigger: string;
  modelVersion?: string;
}

describe('evaluation triggers: schedules across replicas and restarts, model publication', () => {
  const model = uniqueName('evaltrig').replace(/[^a-z0-9-]/g, '');
  const prefix = `${uniqueName('trg')
    .replace(/[^a-z0-9-]/g, '')
    .slice(0, 20)}-`;
  const bucket = uniqueName('lvr-eval-trig').slice(0, 60);
  const dir = tempDir('tiny');
  const store = testStore();
  let api: ServerProcess;
  const schedule = { name: 'every20s', cron: '', timezone: ZONE };

  const env = (): Record<string, string> => ({
    EVALUATOR_GROUP_ID: `${prefix}group`,
    LVR_EVAL_ID_PREFIX: prefix,
    LVR_EVAL_API_URL: `${api.url}/v1`,
    LVR_EVAL_BUCKET: bucket,
    LVR_EVAL_SCHEDULE_POLL_MS: '500',
    LVR_EVAL_LEASE_MS: '4000',
    LVR_BENCHMARKS: `tiny=${dir}`,
    LVR_EVAL_SCHEDULES: JSON.stringify([
      { ...schedule, models: [model], benchmarks: [{ name: 'tiny' }], decoding: { maxTokens: 2 } },
    ]),
    LVR_EVAL_ON_PUBLISH: JSON.stringify([
      { models: ['evaltrig*'], benchmarks: [{ name: 'tiny' }], decoding: { maxTokens: 2 } },
    ]),
  });

  async function scheduledEntries(): Promise<IndexEntry[]> {
    const objects = await store.list(bucket, 'index/');
    const entries = await Promise.all(
      objects.map(async (o) => JSON.parse((await store.get(bucket, o.key)).toString()) as IndexEntry),
    );
    return entries.filter((e) => e.trigger === 'schedule');
  }

  /** Once a marker request sent now has its result, every request produced before it was handled. */
  async function drain(tag: string): Promise<void> {
    const marker = `${prefix}${tag}`;
    await requestEvaluation({
      evalId: marker,
      modelId: model,
      benchmarks: [{ name: 'tiny', limit: 1 }],
      decoding: { maxTokens: 1 },
    });
    assert.equal((await waitForResult(marker)).status, 'Succeeded');
  }

  before(async () => {
    await ensureTopics([...ALL_TOPICS]);
    await colourFixture(dir, 2);
    // the demo bundle served as version 7 of the model: `<model>` and `<model>@7` both address it
    api = await startDemoApi(`${model}@7`, { LVR_KAFKA_BROKERS: '' });
    // every 20 s, but only during two hours of the day in Asia/Kolkata (now and the next): read in UTC it would not fire
    schedule.cron = `*/20 * ${hoursIn(ZONE)} * * *`;
  });

  after(async () => {
    await api?.stop();
  });

  test('two replicas: each tick is evaluated exactly once; after downtime only the latest missed tick runs, once', async () => {
    const cron = new Cron(schedule.cron, { timezone: ZONE, paused: true });
    const replicas: EvaluatorProcess[] = await Promise.all([
      startEvaluatorProcess(env()),
      startEvaluatorProcess(env()),
    ]);
    const firstTick = cron.nextRun(new Date(Date.now() + 1000))!;
    const secondTick = cron.nextRun(firstTick)!;
    const firstId = scheduledEvalId(prefix, schedule.name, firstTick, model);
    const secondId = scheduledEvalId(prefix, schedule.name, secondTick, model);
    assert.equal((await waitForResult(firstId, 120_000)).status, 'Succeeded');
    assert.equal((await waitForResult(secondId, 120_000)).status, 'Succeeded');
    await Promise.all(replicas.map((r) => r.stop()));
    const stoppedAt = new Date();
    // both replicas run the schedule loop; whichever saw the tick first requested it (the other may have too)
    assert.ok(replicas.some((r) => r.output().includes(`requested ${firstId}`)));

    // down across at least two ticks
    const missed = cron.nextRuns(2, stoppedAt);
    while (Date.now() < missed[1].getTime() + 1500) await sleep(500);
    const restarted = await startEvaluatorProcess(env());
    const restartedAt = new Date();
    try {
      const missedTicks = cron.nextRuns(50, stoppedAt).filter((t) => t <= restartedAt);
      assert.ok(missedTicks.length >= 2);
      const latestMissed = missedTicks.at(-1)!;
      const latestId = scheduledEvalId(prefix, schedule.name, latestMissed, model);
      assert.equal((await waitForResult(latestId, 120_000)).status, 'Succeeded');
      await drain('sched-drain');
      const entries = await scheduledEntries();
      const ids = new Set(entries.map((e) => e.evalId));
      for (const tick of missedTicks.slice(0, -1))
        assert.ok(
          !ids.has(scheduledEvalId(prefix, schedule.name, tick, model)),
          `missed tick ${tick.toISOString()} must not run`,
        );
      const results = await collect<ResultMessage>(
        Topics.evaluationResults,
        (m) => m.evalId.startsWith(prefix),
        (c) => c.some((m) => m.evalId === `${prefix}sched-drain`),
      );
      for (const id of [firstId, secondId, latestId])
        assert.equal(results.filter((m) => m.evalId === id).length, 1, `${id} has exactly one result`);
      const first = results.find((m) => m.evalId === firstId)!;
      assert.equal(first.schedule, schedule.name);
      // the second evaluation of the schedule is compared with the first
      const second = results.find((m) => m.evalId === secondId)!;
      assert.equal(second.regression?.previousEvalId, firstId);
    } finally {
      await restarted.stop();
    }
  });

  test('a published model that opted in is evaluated once at exactly its version (model@version); others are not', async () => {
    const evaluator = await startEvaluatorProcess({ ...env(), LVR_EVAL_SCHEDULES: '[]' });
    try {
      const publish = async (modelId: string, version: string): Promise<void> =>
        produceRaw(
          Topics.modelsPublished,
          modelId,
          JSON.stringify({
            apiVersion: MODELS_API_VERSION,
            id: randomUUID(),
            timestamp: new Date().toISOString(),
            modelId,
            version,
            bundleUri: `/nonexistent/${modelId}/${version}`,
          }),
        );
      await publish(model, '7');
      await publish(model, '7'); // redelivered / republished: still one evaluation
      await publish('not-opted-in-model', '1');
      await publish(model, '99'); // a version the API does not serve: addressed exactly, so it fails instead of evaluating 7
      const evalId = publishedEvalId(prefix, model, '7', 0);
      const result = await waitForResult(evalId, 120_000);
      assert.equal(result.status, 'Succeeded', result.reason);
      assert.equal(result.modelVersion, '7');
      const wrongVersion = await waitForResult(publishedEvalId(prefix, model, '99', 0), 120_000);
      assert.equal(wrongVersion.status, 'Failed');
      assert.match(wrongVersion.reason!, new RegExp(`does not serve model "${model}@99"`));
      await drain('pub-drain');
      const results = await collect<ResultMessage>(
        Topics.evaluationResults,
        (m) => m.evalId.startsWith(prefix),
        (c) => c.some((m) => m.evalId === `${prefix}pub-drain`),
      );
      assert.equal(results.filter((m) => m.evalId === evalId).length, 1);
      assert.equal(
        results.filter((m) => m.evalId === publishedEvalId(prefix, 'not-opted-in-model', '1', 0)).length,
        0,
      );
      const entry = JSON.parse((await store.get(bucket, `index/${evalId}.json`)).toString()) as IndexEntry;
      assert.equal(entry.trigger, 'published');
    } finally {
      await evaluator.stop();
    }
  });
});
