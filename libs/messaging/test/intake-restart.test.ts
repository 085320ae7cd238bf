import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Kafka, logLevel } from 'kafkajs';
import { EVALUATION_API_VERSION, EvaluationRequest } from '@lvr/contracts';
import {
  IntakeOutcome,
  KafkaProcessedIds,
  KafkaSettings,
  MessagePublisher,
  RawKafkaMessage,
  ValidatedIntake,
  kafkaSettingsFromEnv,
} from '@lvr/messaging';
import { uniqueName } from '../../../tests/support/env';

/**
 * Redelivery after a consumer restart, against the real broker: each "process" is a fresh intake, store and
 * consumer; a process "crashes" by stopping after its handler ran and before committing the offset, which is the
 * window in which Kafka redelivers a message whose effects are already done.
 */
describe('ValidatedIntake across a consumer restart (real Kafka)', () => {
  let settings: KafkaSettings;
  let kafka: Kafka;
  let publisher: MessagePublisher;
  const requests = uniqueName('it-intake-requests');
  const processedTopic = uniqueName('it-intake-processed');

  before(async () => {
    settings = kafkaSettingsFromEnv(uniqueName('it-intake'));
    kafka = new Kafka({ ...settings, logLevel: logLevel.NOTHING });
    publisher = new MessagePublisher(settings);
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: requests, numPartitions: 1 }], waitForLeaders: true });
    await admin.disconnect();
  });

  after(async () => {
    await publisher.close();
    const admin = kafka.admin();
    await admin.connect();
    await admin.deleteTopics({ topics: [requests, processedTopic] }).catch(() => undefined);
    await admin.disconnect();
  });

  async function send(id: string): Promise<void> {
    const producer = kafka.producer();
    await producer.connect();
    const request = {
      apiVersion: EVALUATION_API_VERSION,
      id,
      timestamp: new Date().toISOString(),
      evalId: id,
      modelId: 'demo',
      benchmarks: [{ name: 'b', uri: 's3://bench/b/' }],
    };
    await producer.send({ topic: requests, messages: [{ key: id, value: JSON.stringify(request) }] });
    await producer.disconnect();
  }

  /** One consumer process: handles `count` messages with a new intake and store, then stops without committing. */
  async function runProcess(
    consumerName: string,
    groupId: string,
    count: number,
    handle: (intake: ValidatedIntake<EvaluationRequest>, message: RawKafkaMessage) => Promise<void>,
  ): Promise<void> {
    const store = new KafkaProcessedIds(settings, consumerName, { topic: processedTopic });
    const intake = new ValidatedIntake(EvaluationRequest, publisher, consumerName, { processedIds: store });
    const consumer = kafka.consumer({ groupId });
    await consumer.connect();
    await consumer.subscribe({ topic: requests, fromBeginning: true });
    let handled = 0;
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`handled ${handled}/${count} messages in 60 s`)),
          60000,
        );
        consumer
          .run({
            autoCommit: false,
            eachMessage: async ({ topic, partition, message }) => {
              if (handled >= count) return;
              await handle(intake, {
                topic,
                partition,
                offset: message.offset,
                key: message.key,
                value: message.value,
              });
              if (++handled === count) {
                clearTimeout(timer);
                resolve();
              }
            },
          })
          .catch(reject);
      });
    } finally {
      await consumer.disconnect();
      await store.close();
    }
  }

  test('a message redelivered to a restarted consumer is not acted on again; new and unfinished ones are', async () => {
    const consumerName = uniqueName('evaluator');
    const groupId = uniqueName('it-intake-group');
    const [done, failed, later] = [uniqueName('done'), uniqueName('failed'), uniqueName('later')];
    const effects: string[] = [];
    const outcomes: Array<IntakeOutcome<EvaluationRequest>> = [];
    await send(done);
    await send(failed);

    // First process: `done` completes; the effect of `failed` throws, so its id must not be recorded.
    await runProcess(consumerName, groupId, 2, async (intake, message) => {
      await intake
        .process(message, async (request) => {
          if (request.id === failed) throw new Error('effect failed');
          effects.push(`first:${request.id}`);
        })
        .catch(() => undefined);
    });
    assert.deepEqual(effects, [`first:${done}`]);

    await send(later);
    // Restarted process: nothing was committed, so all three arrive.
    await runProcess(consumerName, groupId, 3, async (intake, message) => {
      outcomes.push(
        await intake.process(message, async (request) => {
          effects.push(`restarted:${request.id}`);
        }),
      );
    });
    assert.deepEqual(effects, [`first:${done}`, `restarted:${failed}`, `restarted:${later}`]);
    const duplicates = outcomes.filter((o) => o.accepted && o.duplicate).map((o) => o.accepted && o.value.id);
    assert.deepEqual(duplicates, [done]);
  });

  test('accept() with complete() after the effect gives the same guarantee', async () => {
    const consumerName = uniqueName('trainer');
    const groupId = uniqueName('it-intake-group');
    const id = uniqueName('accepted');
    const effects: string[] = [];
    await send(id);
    // The first process consumes the whole topic from the start; only `id` concerns this test.
    const handle =
      (label: string) => async (intake: ValidatedIntake<EvaluationRequest>, message: RawKafkaMessage) => {
        const outcome = await intake.accept(message);
        if (!outcome.accepted || outcome.value.id !== id || outcome.duplicate) return;
        effects.push(label);
        await intake.complete(outcome.value.id);
      };
    const total = await countMessages();
    await runProcess(consumerName, groupId, total, handle('first'));
    await runProcess(consumerName, groupId, total, handle('restarted'));
    assert.deepEqual(effects, ['first']);
  });

  test('processed ids are kept per consumer name', async () => {
    const id = uniqueName('shared');
    const trainer = new KafkaProcessedIds(settings, uniqueName('trainer'), { topic: processedTopic });
    const evaluator = new KafkaProcessedIds(settings, uniqueName('evaluator'), { topic: processedTopic });
    try {
      await trainer.add(id);
      assert.equal(await trainer.has(id), true);
      assert.equal(await evaluator.has(id), false);
    } finally {
      await Promise.all([trainer.close(), evaluator.close()]);
    }
  });

  async function countMessages(): Promise<number> {
    const admin = kafka.admin();
    await admin.connect();
    const offsets = await admin.fetchTopicOffsets(requests);
    await admin.disconnect();
    return offsets.reduce((n, p) => n + Number(p.high) - Number(p.low), 0);
  }
});
