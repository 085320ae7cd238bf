import os from 'node:os';
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel, type Consumer, type Producer } from 'kafkajs';
import { DEAD_LETTER_API_VERSION, Topics } from '@lvr/contracts';
import type { JsonLogger } from '../logging/json-logger';
import type { ModelEventHandler, ModelEventsSource, RawModelEvent } from './model-hot-loader';

/**
 * `lvr.models.published` over Kafka. Every API replica must serve every model's newest version, including one that
 * restarts after the announcement: each process reads the topic from the beginning in a consumer group of its own
 * (host + pid + random suffix), and reports when it has caught up to the end offsets it saw at start. The topic is
 * keyed by model id; created here (if missing) with `cleanup.policy=compact`, so the newest announcement of every
 * model survives retention while older ones are compacted away. Rejected events go to `lvr.deadletter`.
 */
export class KafkaModelEvents implements ModelEventsSource {
  private readonly kafka: Kafka;
  private consumer: Consumer | undefined;
  private producer: Producer | undefined;
  private readonly consumerName = `lvr-api-${os.hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;

  constructor(
    brokers: string[],
    private readonly logger: JsonLogger,
  ) {
    this.kafka = new Kafka({
      clientId: 'lvr-api',
      brokers,
      logLevel: logLevel.NOTHING,
      retry: { retries: 5 },
    });
  }

  /** Last offset of every non-empty partition now (what "caught up" means), creating the topic when missing. */
  private async startOffsets(): Promise<Map<number, bigint>> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      const topics = await admin.listTopics();
      if (!topics.includes(Topics.modelsPublished)) {
        await admin
          .createTopics({
            topics: [
              {
                topic: Topics.modelsPublished,
                configEntries: [{ name: 'cleanup.policy', value: 'compact' }],
              },
            ],
            waitForLeaders: true,
          })
          .catch(() => undefined); // created meanwhile by another replica or producer
      }
      const last = new Map<number, bigint>();
      for (const p of await admin.fetchTopicOffsets(Topics.modelsPublished)) {
        if (BigInt(p.high) > BigInt(p.low)) last.set(p.partition, BigInt(p.high) - 1n);
      }
      return last;
    } finally {
      await admin.disconnect();
    }
  }

  async start(handle: ModelEventHandler, onCaughtUp: () => Promise<void>): Promise<void> {
    const behind = await this.startOffsets();
    this.consumer = this.kafka.consumer({ groupId: this.consumerName });
    this.producer = this.kafka.producer();
    await this.consumer.connect();
    await this.producer.connect();
    await this.consumer.subscribe({ topic: Topics.modelsPublished, fromBeginning: true });
    const consumer = this.consumer;
    let caughtUp = false;
    const catchUp = async (): Promise<void> => {
      if (caughtUp || behind.size > 0) return;
      caughtUp = true;
      await onCaughtUp();
    };
    const joined = new Promise<void>((resolve) => {
      const off = consumer.on(consumer.events.GROUP_JOIN, () => {
        off();
        resolve();
      });
    });
    await this.consumer.run({
      eachMessage: async ({ message, partition }) => {
        const offset = BigInt(message.offset);
        const last = behind.get(partition);
        const replay = last !== undefined && offset <= last;
        await handle(
          { value: message.value, key: message.key?.toString(), partition, offset: message.offset },
          replay,
        );
        if (last !== undefined && offset >= last) {
          behind.delete(partition);
          await catchUp();
        }
      },
    });
    await joined;
    this.logger.info('subscribed to model events', {
      topic: Topics.modelsPublished,
      group: this.consumerName,
      replaying: behind.size,
    });
    await catchUp(); // nothing published yet
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
