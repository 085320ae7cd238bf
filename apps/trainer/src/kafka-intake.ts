import { Logger } from '@nestjs/common';
import { Consumer, Kafka, logLevel } from 'kafkajs';
import { TRAINING_API_VERSION, TrainingCommand, TrainingEvent, TrainingRequest } from '@lvr/contracts';
import {
  type KafkaSettings,
  MessagePublisher,
  type RawKafkaMessage,
  ValidatedIntake,
  ensureTopics,
  extractField,
} from '@lvr/messaging';
import type { TrainerTopics } from './config';
import type { RunLifecycle } from './runs/lifecycle';

/** Runs whose messages are handled at once (Kubernetes and Kafka round trips overlap; each run stays ordered). */
const INTAKE_CONCURRENCY = 16;

/**
 * The trainer's consumer: training requests, operator commands and the workers' own events. A message's offset is
 * committed only after its handler returned, so an effect (record, Job, event) always exists before the message is
 * acknowledged; handlers are idempotent, so a redelivery after a crash changes nothing.
 */
export class TrainerIntake {
  private readonly logger = new Logger(TrainerIntake.name);
  private readonly consumer: Consumer;
  private readonly requests: ValidatedIntake<TrainingRequest>;
  private readonly commands: ValidatedIntake<TrainingCommand>;
  private readonly workerEvents: ValidatedIntake<TrainingEvent>;

  constructor(
    private readonly kafka: KafkaSettings,
    groupId: string,
    private readonly topics: TrainerTopics,
    private readonly publisher: MessagePublisher,
    private readonly lifecycle: RunLifecycle,
  ) {
    this.consumer = new Kafka({ ...kafka, logLevel: logLevel.WARN, retry: { retries: 8 } }).consumer({
      groupId,
      allowAutoTopicCreation: true,
      retry: { retries: 8 },
    });
    this.requests = new ValidatedIntake(TrainingRequest, publisher, 'trainer');
    this.commands = new ValidatedIntake(TrainingCommand, publisher, 'trainer');
    this.workerEvents = new ValidatedIntake(TrainingEvent, publisher, 'trainer');
  }

  /** Resolves once the consumer joined its group. */
  async start(): Promise<void> {
    const joined = new Promise<void>((resolve) => {
      const off = this.consumer.on(this.consumer.events.GROUP_JOIN, () => {
        off();
        resolve();
      });
    });
    const subscribed = [this.topics.requests, this.topics.commands, this.topics.workerEvents];
    await ensureTopics(this.kafka, subscribed);
    await this.consumer.connect();
    await this.consumer.subscribe({
      topics: subscribed,
      fromBeginning: true,
    });
    await this.consumer.run({
      autoCommit: true,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        // Messages of different runs are handled concurrently, those of one run in order; the batch's offset is
        // resolved only after every handler returned, so a crash redelivers rather than loses.
        const byRun = new Map<string, RawKafkaMessage[]>();
        for (const m of batch.messages) {
          const key = m.key?.toString('utf8') ?? `${batch.partition}:${m.offset}`;
          const message = {
            topic: batch.topic,
            partition: batch.partition,
            offset: m.offset,
            key: m.key,
            value: m.value,
          };
          byRun.set(key, [...(byRun.get(key) ?? []), message]);
        }
        const queues = [...byRun.values()];
        const workers = Array.from({ length: Math.min(INTAKE_CONCURRENCY, queues.length) }, async () => {
          for (let queue = queues.shift(); queue; queue = queues.shift())
            for (const message of queue) {
              if (!isRunning() || isStale()) return;
              await this.handle(message);
            }
        });
        await Promise.all(workers);
        if (!isRunning() || isStale()) return;
        resolveOffset(batch.messages.at(-1)!.offset);
        await heartbeat();
      },
    });
    await joined;
  }

  async stop(): Promise<void> {
    await this.consumer.disconnect();
  }

  private async handle(message: RawKafkaMessage): Promise<void> {
    if (message.topic === this.topics.requests) return this.onRequest(message);
    if (message.topic === this.topics.commands) return this.onCommand(message);
    if (message.topic === this.topics.workerEvents) return this.onWorkerEvent(message);
  }

  private async onRequest(message: RawKafkaMessage): Promise<void> {
    const outcome = await this.requests.accept(message);
    if (!outcome.accepted) {
      const runId = extractField(message.value, 'runId');
      this.logger.warn(`rejected training request at offset ${message.offset}: ${outcome.reason}`);
      if (runId)
        await this.publisher.publish<TrainingEvent>(this.topics.events, runId, {
          apiVersion: TRAINING_API_VERSION,
          runId,
          type: 'Rejected',
          reason: outcome.reason,
        });
      return;
    }
    // Even a redelivered message id goes through: submit is idempotent by run id and finishes what a crash cut off.
    await this.lifecycle.submit(outcome.value);
  }

  private async onCommand(message: RawKafkaMessage): Promise<void> {
    const outcome = await this.commands.accept(message);
    if (!outcome.accepted) return;
    const command = outcome.value;
    const record = await this.lifecycle.cancel(command.runId, command.reason ?? 'cancelled by operator');
    if (!record) this.logger.warn(`cancel for unknown run ${command.runId} ignored`);
  }

  private async onWorkerEvent(message: RawKafkaMessage): Promise<void> {
    const outcome = await this.workerEvents.accept(message);
    // Redeliveries go through too: merging is idempotent and a forward keeps the worker's message id.
    if (!outcome.accepted) return;
    await this.lifecycle.mergeWorkerEvent(outcome.value);
  }
}
