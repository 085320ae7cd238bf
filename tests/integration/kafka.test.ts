import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Consumer, EachMessagePayload, Kafka, logLevel } from 'kafkajs';
import { requireEnv, uniqueName } from '../support/env';

/** Consumes until `count` messages arrived, collecting their values; bounded so a broken broker fails, not hangs. */
function collect(consumer: Consumer, count: number, sink: string[], timeoutMs = 60000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`only ${sink.length}/${count} messages within ${timeoutMs}ms`)),
      timeoutMs,
    );
    consumer
      .run({
        autoCommit: false,
        eachMessage: async ({ topic, partition, message }: EachMessagePayload) => {
          sink.push(message.value?.toString() ?? '');
          // Commit only after the message is handled: a crash before this point redelivers it.
          await consumer.commitOffsets([
            { topic, partition, offset: (Number(message.offset) + 1).toString() },
          ]);
          if (sink.length >= count) {
            clearTimeout(timer);
            resolve();
          }
        },
      })
      .catch(reject);
  });
}

describe('Kafka round trip against the real broker', () => {
  let kafka: Kafka;
  const topic = uniqueName('it-roundtrip');
  const groupId = uniqueName('it-group');

  before(async () => {
    kafka = new Kafka({
      clientId: 'it-kafka',
      brokers: requireEnv('LVR_KAFKA_BROKERS').split(','),
      logLevel: logLevel.NOTHING,
      retry: { retries: 3 },
    });
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });
    await admin.disconnect();
  });

  after(async () => {
    const admin = kafka.admin();
    await admin.connect();
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin.disconnect();
  });

  test('a consumer group receives every message once across a consumer restart', async () => {
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const first = Array.from({ length: 10 }, (_, i) => `m${i}`);
    await producer.send({ topic, messages: first.map((value, i) => ({ key: `k${i % 3}`, value })) });

    const received: string[] = [];
    const consumerA = kafka.consumer({ groupId });
    await consumerA.connect();
    await consumerA.subscribe({ topic, fromBeginning: true });
    await collect(consumerA, first.length, received);
    await consumerA.disconnect();

    // While no consumer runs, more work arrives; the restarted member must resume at the committed offsets.
    const second = Array.from({ length: 10 }, (_, i) => `n${i}`);
    await producer.send({ topic, messages: second.map((value, i) => ({ key: `k${i % 3}`, value })) });
    await producer.disconnect();

    const afterRestart: string[] = [];
    const consumerB = kafka.consumer({ groupId });
    await consumerB.connect();
    await consumerB.subscribe({ topic, fromBeginning: true });
    await collect(consumerB, second.length, afterRestart);
    await consumerB.disconnect();

    assert.deepEqual([...received].sort(), [...first].sort());
    assert.deepEqual([...afterRestart].sort(), [...second].sort(), 'restart lost or replayed messages');
  });

  test('messages with one key keep their order', async () => {
    const orderedTopic = `${topic}-ordered`;
    const producer = kafka.producer();
    await producer.connect();
    const values = Array.from({ length: 20 }, (_, i) => `step-${i}`);
    for (const value of values)
      await producer.send({ topic: orderedTopic, messages: [{ key: 'run-1', value }] });
    await producer.disconnect();
    const consumer = kafka.consumer({ groupId: uniqueName('it-order') });
    await consumer.connect();
    await consumer.subscribe({ topic: orderedTopic, fromBeginning: true });
    const got: string[] = [];
    await collect(consumer, values.length, got);
    await consumer.disconnect();
    assert.deepEqual(got, values);
  });
});
