import os from 'node:os';
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel, type Consumer, type Producer } from 'kafkajs';
import { DEAD_LETTER_API_VERSION, Topics } from '@lvr/contracts';
import type { JsonLogger } from '../logging/json-logger';
import type { ModelEventsSource, RawModelEvent } from './model-hot-loader';

/**
 * `lvr.models.published` over Kafka. Every API replica must load every model, so each process uses its own
 * consumer group (host + pid) and starts from the latest offset. Rejected events go to `lvr.deadletter`.
 */
export class KafkaModelEvents implements ModelEventsSource {
  private readonly kafka: Kafka;
  private consumer: Consumer | undefined;
  private producer: Producer | undefined;
  private readonly consumerName = `lvr-api-${os.hostname()}-${process.pid}`;

  constructor(
    brokers: string[],
    private readonly logger: JsonLogger,
    private readonly fromBeginning = false,
  ) {
    this.kafka = new Kafka({
      clientId: 'lvr-api',
      brokers,
      logLevel: logLevel.NOTHING,
      retry: { retries: 5 },
    });
  }

  async start(handle: (event: RawModelEvent) => Promise<void>): Promise<void> {
    this.consumer = this.kafka.consumer({ groupId: this.consumerName });
    this.producer = this.kafka.producer();
    await this.consumer.connect();
    await this.producer.connect();
    await this.consumer.subscribe({ topic: Topics.modelsPublished, fromBeginning: this.fromBeginning });
    const consumer = this.consumer;
    const joined = new Promise<void>((resolve) => {
      const off = consumer.on(consumer.events.GROUP_JOIN, () => {
        off();
        resolve();
      });
    });
    await this.consumer.run({
      eachMessage: async ({ message, partition }) => {
        await handle({
          value: message.value,
          key: message.key?.toString(),
          partition,
          offset: message.offset,
        });
      },
    });
    await joined;
    this.logger.info('subscribed to model events', {
      topic: Topics.modelsPublished,
      group: this.consumerName,
    });
  }

  async reject(event: RawModelEvent, reason: string): Promise<void> {
    if (!this.producer) return;
    const raw = event.value ?? Buffer.alloc(0);
    const text = raw.toString('utf8');
    const utf8 = Buffer.from(text, 'utf8').equals(raw);
    await this.producer.send({
      topic: Topics.deadLetter,
      messages: [
        {
          key: event.key,
          value: JSON.stringify({
            apiVersion: DEAD_LETTER_API_VERSION,
            id: randomUUID(),
            timestamp: new Date().toISOString(),
            sourceTopic: Topics.modelsPublished,
            partition: event.partition,
            offset: event.offset,
            key: event.key,
            reason: reason.slice(0, 8192),
            payload: utf8 ? text : raw.toString('base64'),
            payloadEncoding: utf8 ? 'utf8' : 'base64',
            consumer: this.consumerName,
          }),
        },
      ],
    });
  }

  async stop(): Promise<void> {
    await this.consumer?.disconnect().catch(() => undefined);
    await this.producer?.disconnect().catch(() => undefined);
  }
}
