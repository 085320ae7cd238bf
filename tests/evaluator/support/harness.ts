import { randomUUID } from 'node:crypto';
import { EVALUATION_API_VERSION, Topics } from '@lvr/contracts';
import { ObjectStore, objectStoreConfigFromEnv } from '@lvr/storage';
import { produceRaw, testKafka } from '../../support/kafka';

export function testStore(): ObjectStore {
  return new ObjectStore(objectStoreConfigFromEnv());
}

export interface ResultMessage {
  evalId: string;
  status: 'Succeeded' | 'Failed';
  reason?: string;
  modelId?: string;
  modelVersion?: string;
  schedule?: string;
  reportUri?: string;
  resultsUri?: string;
  scores?: {
    name: string;
    protocol: string;
    group: string;
    config: string;
    accuracy: number;
    correct: number;
    samples: number;
    unparseable: number;
    failed: number;
    ciLow: number;
    ciHigh: number;
  }[];
  regression?: { regressed: boolean; previousEvalId?: string; findings: unknown[] };
}

export async function requestEvaluation(body: Record<string, unknown> & { evalId: string }): Promise<void> {
  await produceRaw(
    Topics.evaluationRequests,
    body.evalId,
    JSON.stringify({
      apiVersion: EVALUATION_API_VERSION,
      id: randomUUID(),
      timestamp: new Date().toISOString(),
      ...body,
    }),
  );
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
  const consumer = testKafka().consumer({ groupId: `it-collect-${randomUUID()}` });
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

/**
 * The result of a valid request. Evaluators of other checkouts sharing the test stack may answer the same request
 * as invalid under an older contract; those answers ("invalid request: ...") are not this evaluator's.
 */
export async function waitForResult(evalId: string, timeoutMs = 180_000): Promise<ResultMessage> {
  const [result] = await collect<ResultMessage>(
    Topics.evaluationResults,
    (m) => m.evalId === evalId && !m.reason?.startsWith('invalid request'),
    (c) => c.length > 0,
    timeoutMs,
  );
  return result;
}

export async function readJsonl<T>(store: ObjectStore, bucket: string, key: string): Promise<T[]> {
  const text = (await store.get(bucket, key)).toString('utf8');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as T);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
