import { randomUUID } from 'node:crypto';
import { EVALUATION_API_VERSION, Topics } from '@lvr/contracts';
import { ObjectStore, objectStoreConfigFromEnv } from '@lvr/storage';
import { collect, produceRaw } from '../../support/kafka';

export { collect };

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
