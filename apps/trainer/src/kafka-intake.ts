import { Logger } from '@nestjs/common';
import { Consumer, Kafka, logLevel } from 'kafkajs';
import { TRAINING_API_VERSION, TrainingCommand, TrainingEvent, TrainingRequest } from '@lvr/contracts';
import {
  type KafkaSettings,
  MessagePublisher,
  type RawKafkaMessage,
  ValidatedIntake,
  extractField,
} from '@lvr/messaging';
import type { TrainerTopics } from './config';
import type { RunLifecycle } from './runs/lifecycle';

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
    kafka: KafkaSettings,
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
    await this.consumer.connect();
    await this.consumer.subscribe({
      topics: [this.topics.requests, this.topics.commands, this.topics.workerEvents],
      fromBeginning: true,
    });
    await this.consumer.run({
      autoCommit: true,
      eachMessage: async ({ topic, partition, message }) =>
        this.handle({ topic, partition, offset: message.offset, key: message.key, value: message.value }),
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
    if (!outcome.accepted || outcome.duplicate) return;
    await this.lifecycle.mergeWorkerEvent(outcome.value);
  }
}
