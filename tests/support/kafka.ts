import { Kafka, logLevel } from 'kafkajs';
import { requireEnv, uniqueName } from './env';

export function testKafka(): Kafka {
  return new Kafka({
    clientId: uniqueName('it'),
    brokers: requireEnv('LVR_KAFKA_BROKERS').split(','),
    logLevel: logLevel.NOTHING,
  });
}

export async function produceRaw(topic: string, key: string, value: string | Buffer): Promise<void> {
  const producer = testKafka().producer({ allowAutoTopicCreation: true });
  await producer.connect();
  await producer.send({ topic, messages: [{ key, value }] });
  await producer.disconnect();
}

/**
 * Reads a topic from the beginning, collecting JSON messages that match, until `done(collected)` holds (then resolves)
 * or the timeout passes (then rejects, naming what was collected).
 */
export async function collect<T>(
  topic: string,
  matches: (message: T) => boolean,
  done: (collected: T[]) => boolean,
  timeoutMs = 120_000,
): Promise<T[]> {
  // A topic the product has not written yet (a dead-letter topic on a fresh stack) would fail the subscription.
  await ensureTopics([topic]);
  const consumer = testKafka().consumer({ groupId: uniqueName('it-collect') });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const collected: T[] = [];
  try {
    return await new Promise<T[]>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(new Error(`timed out on ${topic}; collected ${JSON.stringify(collected).slice(0, 2000)}`)),
        timeoutMs,
      );
      consumer
        .run({
          eachMessage: async ({ message }) => {
            let parsed: T;
            try {
              parsed = JSON.parse(message.value?.toString() ?? 'null') as T;
            } catch {
              return;
            }
            if (parsed && matches(parsed)) collected.push(parsed);
            if (done(collected)) {
              clearTimeout(timer);
              resolve(collected);
            }
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
}

/** Reads `topic` from the beginning until a JSON message matches, failing after `timeoutMs`. */
export async function waitForMessage<T = Record<string, unknown>>(
  topic: string,
  matches: (message: T) => boolean,
  timeoutMs = 60000,
): Promise<T> {
  const [first] = await collect(topic, matches, (found) => found.length > 0, timeoutMs);
  return first;
}

export async function ensureTopics(topics: string[]): Promise<void> {
  const admin = testKafka().admin();
  await admin.connect();
  await admin.createTopics({
    topics: topics.map((topic) => ({ topic, numPartitions: 1 })),
    waitForLeaders: true,
  });
  await admin.disconnect();
}
