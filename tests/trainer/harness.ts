// Test helpers for the trainer suites: a real trainer process, per-suite Kafka topics, and an event recorder.
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import type { Consumer } from 'kafkajs';
import { Kafka, logLevel } from 'kafkajs';
import { ensureTopics, testKafka } from '../support/kafka';
import { uniqueName } from '../support/env';

const ROOT = path.resolve(__dirname, '../..');

export interface SuiteTopics {
  requests: string;
  commands: string;
  events: string;
  workerEvents: string;
}

/** Topics of one suite, so its trainer never sees another suite's requests on the shared broker. */
export async function suiteTopics(prefix: string): Promise<SuiteTopics> {
  const id = uniqueName(prefix);
  const topics = {
    requests: `it.${id}.requests`,
    commands: `it.${id}.commands`,
    events: `it.${id}.events`,
    workerEvents: `it.${id}.worker-events`,
  };
  await ensureTopics(Object.values(topics));
  return topics;
}

export function topicEnv(topics: SuiteTopics): Record<string, string> {
  return {
    LVR_TRAINER_REQUESTS_TOPIC: topics.requests,
    LVR_TRAINER_COMMANDS_TOPIC: topics.commands,
    LVR_TRAINER_EVENTS_TOPIC: topics.events,
    LVR_TRAINER_WORKER_EVENTS_TOPIC: topics.workerEvents,
  };
}

export interface TrainerProcess {
  url: string;
  child: ChildProcess;
  output: () => string;
  /** SIGTERM (graceful) or SIGKILL (a crash), resolved once the process is gone. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts `npm run start:trainer`'s entry point as a separate process on a free port. */
export async function startTrainerProcess(
  env: Record<string, string>,
  timeoutMs = 90_000,
): Promise<TrainerProcess> {
  const child = spawn(process.execPath, ['-r', '@swc-node/register', 'apps/trainer/src/main.ts'], {
    cwd: ROOT,
    env: { ...process.env, TRAINER_PORT: '0', TRAINER_HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`trainer did not start in time:\n${output}`)), timeoutMs);
    const check = () => {
      const match = /"msg":"listening".*?"url":"(http:\/\/[^"]+)"/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1].replace('[::1]', '127.0.0.1'));
      }
    };
    child.stdout!.on('data', check);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`trainer exited with ${code} before listening:\n${output}`));
    });
  });
  return {
    url,
    child,
    output: () => output,
    stop: (signal: NodeJS.Signals = 'SIGTERM') =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill(signal);
      }),
  };
}

export interface RecordedEvent {
  id: string;
  runId: string;
  type: string;
  reason?: string;
  timestamp: string;
  data?: Record<string, unknown>;
  receivedAt: number;
}

/** Records every message of a topic from its beginning; `waitFor` resolves once a predicate holds. */
export class EventRecorder {
  readonly events: RecordedEvent[] = [];
  private consumer?: Consumer;
  private waiters: Array<() => void> = [];

  /** `brokers`: a broker other than the stack's (the broker-restart suite). */
  static async start(topic: string, brokers?: string): Promise<EventRecorder> {
    const recorder = new EventRecorder();
    const consumer = kafkaFor(brokers).consumer({ groupId: uniqueName('it-events'), maxWaitTimeInMs: 100 });
    recorder.consumer = consumer;
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        try {
          recorder.events.push({ ...JSON.parse(message.value!.toString()), receivedAt: Date.now() });
        } catch {
          return;
        }
        for (const wake of recorder.waiters.splice(0)) wake();
      },
    });
    return recorder;
  }

  of(runId: string): RecordedEvent[] {
    return this.events.filter((e) => e.runId === runId);
  }

  types(runId: string): string[] {
    return this.of(runId).map((e) => e.type);
  }

  async waitFor(what: string, predicate: () => boolean, timeoutMs = 90_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `timed out waiting for ${what}; events:\n${this.events.map((e) => `  ${e.runId} ${e.type} ${e.reason ?? ''}`).join('\n')}`,
        );
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 1000));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Waits until the run has an event of `type` and returns it. */
  async next(runId: string, type: string, timeoutMs?: number): Promise<RecordedEvent> {
    await this.waitFor(`${type} of ${runId}`, () => this.of(runId).some((e) => e.type === type), timeoutMs);
    return this.of(runId).find((e) => e.type === type)!;
  }

  async stop(): Promise<void> {
    await this.consumer?.disconnect();
  }
}

/** A client of the stack's broker, or of `brokers` (a private one that a suite stops and starts: its clients keep
 * reconnecting every second or two for as long as it is down, instead of giving up after kafkajs' default retries). */
function kafkaFor(brokers?: string): Kafka {
  if (!brokers) return testKafka();
  return new Kafka({
    clientId: uniqueName('it'),
    brokers: brokers.split(','),
    logLevel: logLevel.NOTHING,
    retry: { initialRetryTime: 200, maxRetryTime: 2_000, retries: 1_000 },
  });
}

export async function produce(topic: string, key: string, value: unknown, brokers?: string): Promise<void> {
  const producer = kafkaFor(brokers).producer({ allowAutoTopicCreation: true });
  await producer.connect();
  await producer.send({
    topic,
    messages: [{ key, value: typeof value === 'string' ? value : JSON.stringify(value) }],
  });
  await producer.disconnect();
}

export function trainingRequest(
  runId: string,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    apiVersion: 'lvr.training/v1',
    id: uniqueName('msg'),
    timestamp: new Date().toISOString(),
    runId,
    stage: 'sft',
    model: { uri: 's3://models/base' },
    data: { uri: 's3://data/meta.json' },
    // CPU-only unless a test needs GPUs: the shared test cluster has 16 simulated GPUs for every suite.
    resources: { gpusPerNode: 0 },
    checkpoint: { uri: `s3://runs/${runId}/checkpoints`, everySteps: 10 },
    output: { bundleUri: `s3://models/${runId}` },
    ...overrides,
  };
}

export function cancelCommand(runId: string): Record<string, unknown> {
  return {
    apiVersion: 'lvr.training/v1',
    id: uniqueName('cmd'),
    timestamp: new Date().toISOString(),
    runId,
    command: 'cancel',
  };
}

/**
 * The run's view (`GET /v1/runs/:id`) once `settled` holds for it, or the last one read after 30 s: the trainer
 * publishes a transition (or forwards a worker event) first and stores it after, so a reader that saw the event may
 * briefly read the run as it was before.
 */
export async function runViewWhen<T extends { phase: string }>(
  trainerUrl: string,
  runId: string,
  settled: (view: T) => boolean,
): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const view = await getJson<T>(`${trainerUrl}/v1/runs/${runId}`);
    if (settled(view.body) || Date.now() > deadline) return view.body;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The run's view once its phase is `phase` (see runViewWhen). */
export function runViewInPhase<T extends { phase: string }>(
  trainerUrl: string,
  runId: string,
  phase: string,
): Promise<T> {
  return runViewWhen<T>(trainerUrl, runId, (view) => view.phase === phase);
}

export async function getJson<T>(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: T }> {
  const res = await fetch(url, { headers });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}
