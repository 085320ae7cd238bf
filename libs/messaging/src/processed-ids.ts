import { randomUUID } from 'node:crypto';
import { Admin, Consumer, Kafka, Producer, logLevel } from 'kafkajs';
import { KafkaSettings } from './config';

/** Ids of messages whose effects are done, kept where a restarted consumer finds them again. */
export interface ProcessedIdStore {
  has(id: string): Promise<boolean>;
  add(id: string): Promise<void>;
  close(): Promise<void>;
}

/** Compacted topic holding one record per processed message, keyed `<consumer>/<message id>`. */
export const PROCESSED_IDS_TOPIC = 'lvr.consumer.processed';

export interface KafkaProcessedIdsOptions {
  topic?: string;
  /** How long `has` waits to read the topic up to its end before failing (default 30 s). */
  catchUpTimeoutMs?: number;
  /**
   * How long a record is kept (default 30 days). An id only has to outlive the chance of its message being
   * redelivered, and a redelivery comes from a record still retained in its source topic (broker default: 7 days).
   */
  retentionMs?: number;
}

export class ProcessedIdsUnavailable extends Error {}

/**
 * Processed-message ids in a compacted Kafka topic, so a restarted consumer, or the replica a partition moves to,
 * recognises a redelivered message. `has` first reads the topic up to its current end, so an id recorded by any
 * process before the call is seen; `add` returns once the broker has the record (acks from all in-sync replicas).
 */
export class KafkaProcessedIds implements ProcessedIdStore {
  private readonly kafka: Kafka;
  private readonly topic: string;
  private readonly prefix: string;
  private readonly ids = new Set<string>();
  /** Next offset to read, per partition. */
  private readonly nextOffset = new Map<number, bigint>();
  private opened?: Promise<{ admin: Admin; consumer: Consumer; producer: Producer }>;

  constructor(
    private readonly settings: KafkaSettings,
    consumerName: string,
    private readonly options: KafkaProcessedIdsOptions = {},
  ) {
    this.kafka = new Kafka({ ...settings, logLevel: logLevel.WARN });
    this.topic = options.topic ?? PROCESSED_IDS_TOPIC;
    this.prefix = `${consumerName}/`;
  }

  async has(id: string): Promise<boolean> {
    if (this.ids.has(id)) return true;
    await this.catchUp();
    return this.ids.has(id);
  }

  async add(id: string): Promise<void> {
    const { producer } = await this.open();
    await producer.send({
      topic: this.topic,
      acks: -1,
      messages: [
        { key: this.prefix + id, value: JSON.stringify({ id, processedAt: new Date().toISOString() }) },
      ],
    });
    this.ids.add(id);
  }

  async close(): Promise<void> {
    if (!this.opened) return;
    const opened = this.opened;
    this.opened = undefined;
    const handles = await opened.catch(() => undefined);
    if (!handles) return;
    const { admin, consumer, producer } = handles;
    await Promise.allSettled([consumer.disconnect(), producer.disconnect(), admin.disconnect()]);
  }

  /** Nest calls this on shutdown when the store is registered as a provider. */
  async onModuleDestroy(): Promise<void> {
    await this.close();
  }

  private open(): Promise<{ admin: Admin; consumer: Consumer; producer: Producer }> {
    this.opened ??= this.connect().catch((error) => {
      this.opened = undefined;
      throw new ProcessedIdsUnavailable(`processed-id topic ${this.topic}: ${(error as Error).message}`);
    });
    return this.opened;
  }

  private async connect(): Promise<{ admin: Admin; consumer: Consumer; producer: Producer }> {
    const admin = this.kafka.admin();
    await admin.connect();
    // Checked first because the broker answers an existing topic with an error that kafkajs logs.
    if (!(await admin.listTopics()).includes(this.topic))
      await admin.createTopics({
        waitForLeaders: true,
        topics: [
          {
            topic: this.topic,
            numPartitions: 1,
            configEntries: [
              { name: 'cleanup.policy', value: 'compact,delete' },
              { name: 'retention.ms', value: String(this.options.retentionMs ?? 30 * 24 * 3600 * 1000) },
            ],
          },
        ],
      });
    // A group of its own that never commits: every process reads the whole topic from the beginning.
    const consumer = this.kafka.consumer({
      groupId: `${this.settings.clientId}-processed-ids-${randomUUID()}`,
    });
    await consumer.connect();
    await consumer.subscribe({ topic: this.topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        const key = message.key?.toString('utf8');
        if (key?.startsWith(this.prefix)) this.ids.add(key.slice(this.prefix.length));
        this.nextOffset.set(partition, BigInt(message.offset) + 1n);
      },
    });
    const producer = this.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    return { admin, consumer, producer };
  }

  /** Waits until every partition has been read up to the end it had when this call started. */
  private async catchUp(): Promise<void> {
    const { admin } = await this.open();
    const ends = await admin.fetchTopicOffsets(this.topic);
    const deadline = Date.now() + (this.options.catchUpTimeoutMs ?? 30000);
    const behind = () =>
      ends.some((p) => (this.nextOffset.get(p.partition) ?? BigInt(p.low)) < BigInt(p.high));
    while (behind()) {
      if (Date.now() > deadline)
        throw new ProcessedIdsUnavailable(`processed-id topic ${this.topic} was not read to its end in time`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}
