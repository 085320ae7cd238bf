// The training-run chart's hook CLI (charts/lvr-training-run): submits a run and waits for the trainer's verdict, or
// cancels it on uninstall.
//
//   submit --request FILE [--run-id ID] [--timeout-s N]   publish lvr.training.requests, wait for Accepted | Rejected
//   submit --cancel --run-id ID [--timeout-s N]           publish a cancel command when the run is active, wait for
//                                                         its terminal event
//
// Brokers come from LVR_KAFKA_BROKERS; LVR_TRAINER_{REQUESTS,COMMANDS,EVENTS}_TOPIC override the contract topics
// (the same variables as the trainer's, for deployments that share a broker). Exit codes: 0 accepted / cancelled / nothing to cancel, 1 rejected or the
// run ended otherwise than asked, 2 bad arguments or request, 3 no verdict within the timeout. The reason of a
// failure is printed and, when LVR_TERMINATION_LOG is set (the chart sets /dev/termination-log), written there so
// `kubectl describe` shows it.
import 'reflect-metadata';
import fs from 'node:fs';
import { randomUUID } from 'node:crypto';
import { Admin, Consumer, Kafka, logLevel } from 'kafkajs';
import {
  ID_PATTERN,
  ID_RULE,
  RUN_PHASES,
  RunPhase,
  TRAINING_API_VERSION,
  Topics,
  TrainingCommand,
  TrainingEvent,
  TrainingRequest,
  describeErrors,
  parseMessage,
} from '@lvr/contracts';
import { MessagePublisher, MessagingConfigError, kafkaSettingsFromEnv } from '@lvr/messaging';

const CLIENT_ID = 'lvr-submit';
const ACTIVE_PHASES: ReadonlySet<string> = new Set<RunPhase>([
  'Accepted',
  'Scheduled',
  'Running',
  'Retrying',
]);
const FINAL_PHASES: ReadonlySet<string> = new Set<RunPhase>(['Succeeded', 'Failed', 'Cancelled']);
/** Lifecycle events; Progress and CheckpointSaved leave the phase as it is, and so does a Rejected resubmission. */
const PHASE_EVENTS: ReadonlySet<string> = new Set<string>(RUN_PHASES);

export const ExitCode = { ok: 0, refused: 1, usage: 2, timeout: 3 } as const;

export class UsageError extends Error {}

export interface SubmitOptions {
  mode: 'submit' | 'cancel';
  requestFile?: string;
  runId?: string;
  timeoutMs: number;
}

export function parseArgs(argv: string[]): SubmitOptions {
  const options: SubmitOptions = { mode: 'submit', timeoutMs: 300_000 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const next = argv[++i];
      if (next === undefined) throw new UsageError(`${arg} needs a value`);
      return next;
    };
    if (arg === '--cancel') options.mode = 'cancel';
    else if (arg === '--request') options.requestFile = value();
    else if (arg === '--run-id') options.runId = value();
    else if (arg === '--timeout-s') {
      const seconds = Number(value());
      if (!Number.isFinite(seconds) || seconds <= 0)
        throw new UsageError('--timeout-s must be a positive number');
      options.timeoutMs = seconds * 1000;
    } else throw new UsageError(`unknown argument ${arg}`);
  }
  if (options.runId !== undefined && !ID_PATTERN.test(options.runId))
    throw new UsageError(`--run-id must be ${ID_RULE}`);
  if (options.mode === 'submit' && !options.requestFile) throw new UsageError('--request FILE is required');
  if (options.mode === 'cancel' && !options.runId) throw new UsageError('--cancel needs --run-id');
  return options;
}

/** The request body from the chart's ConfigMap, with the release's run id, validated like the trainer does. */
export function loadRequest(file: string, runId?: string): Omit<TrainingRequest, 'id' | 'timestamp'> {
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (error) {
    throw new UsageError(`cannot read the request ${file}: ${(error as Error).message}`);
  }
  const plain = { apiVersion: TRAINING_API_VERSION, ...body, ...(runId ? { runId } : {}) };
  const probe = parseMessage(TrainingRequest, { ...plain, id: 'probe', timestamp: new Date().toISOString() });
  if (!probe.ok) throw new UsageError(`invalid training request: ${describeErrors(probe.errors)}`);
  return plain as Omit<TrainingRequest, 'id' | 'timestamp'>;
}

interface RunTopics {
  requests: string;
  commands: string;
  events: string;
}

function topicsFromEnv(env: NodeJS.ProcessEnv): RunTopics {
  return {
    requests: env.LVR_TRAINER_REQUESTS_TOPIC?.trim() || Topics.trainingRequests,
    commands: env.LVR_TRAINER_COMMANDS_TOPIC?.trim() || Topics.trainingCommands,
    events: env.LVR_TRAINER_EVENTS_TOPIC?.trim() || Topics.trainingEvents,
  };
}

export interface Outcome {
  code: number;
  message: string;
}

/** Reads the run's events from given offsets on; every partition's start and end offsets are known up front. */
class RunEvents {
  private consumer?: Consumer;
  private readonly positions = new Map<number, bigint>();
  private caughtUp?: () => void;

  private constructor(
    private readonly kafka: Kafka,
    private readonly topic: string,
    private readonly runId: string,
    private readonly start: Map<number, bigint>,
    private readonly end: Map<number, bigint>,
  ) {}

  /**
   * `history`: read the run's past events (up to now) first; otherwise only events published after this call,
   * which is what the submitter needs (the offsets are taken before it publishes, so no answer can be missed).
   */
  static async open(kafka: Kafka, topic: string, runId: string, history: boolean): Promise<RunEvents> {
    const admin = kafka.admin();
    await admin.connect();
    try {
      await ensureTopic(admin, topic);
      const offsets = await admin.fetchTopicOffsets(topic);
      const start = new Map(offsets.map((o) => [o.partition, BigInt(history ? o.low : o.high)]));
      const end = new Map(offsets.map((o) => [o.partition, BigInt(o.high)]));
      return new RunEvents(kafka, topic, runId, start, end);
    } finally {
      await admin.disconnect();
    }
  }

  /** Starts reading; `onEvent` sees this run's events in order; resolves once the history up to open() is read. */
  async run(onEvent: (event: TrainingEvent) => void): Promise<void> {
    const caughtUp = new Promise<void>((resolve) => (this.caughtUp = resolve));
    this.consumer = this.kafka.consumer({ groupId: `${CLIENT_ID}-${this.runId}-${randomUUID()}` });
    await this.consumer.connect();
    await this.consumer.subscribe({ topic: this.topic, fromBeginning: true });
    await this.consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        const offset = BigInt(message.offset);
        this.positions.set(partition, offset + 1n);
        if (offset >= (this.start.get(partition) ?? 0n) && message.key?.toString() === this.runId) {
          const event = parseMessage(TrainingEvent, message.value ?? '', { forbidUnknown: false });
          if (event.ok) onEvent(event.value);
        }
        this.checkCaughtUp();
      },
    });
    for (const [partition, offset] of this.start)
      this.consumer.seek({ topic: this.topic, partition, offset: offset.toString() });
    this.checkCaughtUp();
    await caughtUp;
  }

  private checkCaughtUp(): void {
    for (const [partition, end] of this.end) {
      const position = this.positions.get(partition) ?? this.start.get(partition) ?? 0n;
      if (position < end) return;
    }
    this.caughtUp?.();
  }

  async close(): Promise<void> {
    await this.consumer?.disconnect();
  }
}

async function ensureTopic(admin: Admin, topic: string): Promise<void> {
  const existing = await admin.listTopics();
  if (!existing.includes(topic)) await admin.createTopics({ topics: [{ topic }], waitForLeaders: true });
}

function waitFor<T>(promise: Promise<T>, timeoutMs: number, onTimeout: () => T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<T>((resolve) => (timer = setTimeout(() => resolve(onTimeout()), timeoutMs)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Publishes the request and waits for the trainer's Accepted or Rejected on the run's key. */
export async function submit(options: SubmitOptions, env = process.env): Promise<Outcome> {
  const request = loadRequest(options.requestFile!, options.runId);
  const runId = request.runId;
  const settings = kafkaSettingsFromEnv(CLIENT_ID, env);
  const topics = topicsFromEnv(env);
  const kafka = new Kafka({ ...settings, logLevel: logLevel.NOTHING });
  const publisher = new MessagePublisher(settings);
  const events = await RunEvents.open(kafka, topics.events, runId, false);
  try {
    let answer!: (outcome: Outcome) => void;
    const verdict = new Promise<Outcome>((resolve) => (answer = resolve));
    await events.run((event) => {
      if (event.type === 'Accepted')
        answer({ code: ExitCode.ok, message: `run ${runId} accepted by the trainer` });
      else if (event.type === 'Rejected')
        answer({
          code: ExitCode.refused,
          message: `run ${runId} rejected: ${event.reason ?? 'no reason given'}`,
        });
    });
    const sent = await publisher.publish<TrainingRequest>(topics.requests, runId, request);
    process.stdout.write(`published ${topics.requests} message ${sent.id} for run ${runId}\n`);
    return await waitFor(verdict, options.timeoutMs, () => ({
      code: ExitCode.timeout,
      message: `no Accepted or Rejected event for run ${runId} on ${topics.events} within ${options.timeoutMs / 1000}s: is the trainer running?`,
    }));
  } finally {
    await events.close();
    await publisher.close();
  }
}

/** Cancels the run when its latest phase is active, then waits for its terminal event. */
export async function cancel(options: SubmitOptions, env = process.env): Promise<Outcome> {
  const runId = options.runId!;
  const settings = kafkaSettingsFromEnv(CLIENT_ID, env);
  const topics = topicsFromEnv(env);
  const kafka = new Kafka({ ...settings, logLevel: logLevel.NOTHING });
  const events = await RunEvents.open(kafka, topics.events, runId, true);
  const publisher = new MessagePublisher(settings);
  try {
    const phases: TrainingEvent[] = [];
    let waiting: ((event: TrainingEvent) => void) | undefined;
    await events.run((event) => {
      if (!PHASE_EVENTS.has(event.type)) return;
      phases.push(event);
      if (waiting && FINAL_PHASES.has(event.type)) waiting(event);
    });
    const history = phases.length;
    const latest = phases[history - 1]?.type;
    if (latest === undefined)
      return { code: ExitCode.ok, message: `run ${runId} was never accepted: nothing to cancel` };
    if (!ACTIVE_PHASES.has(latest))
      return { code: ExitCode.ok, message: `run ${runId} already ended (${latest}): nothing to cancel` };
    // Set before anything else can run: no later event is missed.
    const terminal = new Promise<TrainingEvent>((resolve) => (waiting = resolve));
    await publisher.publish<TrainingCommand>(topics.commands, runId, {
      apiVersion: TRAINING_API_VERSION,
      runId,
      command: 'cancel',
    });
    process.stdout.write(`run ${runId} is ${latest}: cancel command published\n`);
    return await waitFor(
      terminal.then((event) =>
        event.type === 'Cancelled'
          ? { code: ExitCode.ok, message: `run ${runId} cancelled` }
          : {
              code: ExitCode.refused,
              message: `run ${runId} ended ${event.type} before the cancel took effect`,
            },
      ),
      options.timeoutMs,
      () => ({
        code: ExitCode.timeout,
        message: `run ${runId}: no terminal event within ${options.timeoutMs / 1000}s after the cancel command`,
      }),
    );
  } finally {
    await events.close();
    await publisher.close();
  }
}

export async function main(argv = process.argv.slice(2), env = process.env): Promise<number> {
  let outcome: Outcome;
  try {
    const options = parseArgs(argv);
    outcome = options.mode === 'cancel' ? await cancel(options, env) : await submit(options, env);
  } catch (error) {
    const usage = error instanceof UsageError || error instanceof MessagingConfigError;
    outcome = { code: usage ? ExitCode.usage : ExitCode.refused, message: (error as Error).message };
  }
  (outcome.code === 0 ? process.stdout : process.stderr).write(`${outcome.message}\n`);
  if (outcome.code !== 0 && env.LVR_TERMINATION_LOG) {
    try {
      fs.writeFileSync(env.LVR_TERMINATION_LOG, outcome.message);
    } catch {
      // The message is on stderr already; a missing termination log must not hide the real outcome.
    }
  }
  return outcome.code;
}

if (require.main === module) void main().then((code) => process.exit(code));
