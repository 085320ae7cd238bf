import os from 'node:os';
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel, type Consumer } from 'kafkajs';
import { Topics } from '@lvr/contracts';
import { ensureTopics } from '@lvr/messaging';
import type { JsonLogger } from '@lvr/service-kit';
import type { ModelEventHandler, ModelEventsSource } from './model-hot-loader';

/**
 * `lvr.models.published` over Kafka. Every API replica must serve every model's newest version, including one that
 * restarts after the announcement: each process reads the topic from the beginning in a consumer group of its own
 * (host + pid + random suffix), and reports when it has caught up to the end offsets it saw at start. The topic is
 * keyed by model id; created (if missing) compacted (`COMPACTED_TOPICS`), so the newest announcement of every
 * model survives retention while older ones are compacted away. Validation and dead letters are the hot loader's
 * (through the shared intake); this only delivers.
 */
export class KafkaModelEvents implements ModelEventsSource {
  private readonly kafka: Kafka;
  private consumer: Consumer | undefined;
  readonly consumerName = `lvr-api-${os.hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;

  constructor(
    private readonly brokers: string[],
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
    await ensureTopics({ brokers: this.brokers, clientId: 'lvr-api' }, [Topics.modelsPublished]);
    const admin = this.kafka.admin();
    await admin.connect();
    try {
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
    await this.consumer.connect();
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
          {
            topic: Topics.modelsPublished,
            value: message.value,
            key: message.key?.toString(),
            partition,
            offset: message.offset,
          },
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

  async stop(): Promise<void> {
    await this.consumer?.disconnect().catch(() => undefined);
  }
}
