import { randomUUID } from 'node:crypto';
import { Kafka, Producer, logLevel } from 'kafkajs';
import { KafkaSettings } from './config';

/** Body of a message without the envelope fields the publisher fills in. */
export type Unenveloped<T> = Omit<T, 'id' | 'timestamp'> &
  Partial<Pick<T & { id: string; timestamp: string }, 'id' | 'timestamp'>>;

/**
 * Idempotent producer that stamps every message with an id and a timestamp and keys it by run/eval id. A send that
 * fails (e.g. while the broker is down) throws, and the next publish starts over with a new producer: a producer whose
 * send gave up may hold sequence numbers the broker never saw, and an idempotent one then fails every later send.
 * Callers retry with the same message id, so a message the broker did take is redelivered, never lost.
 */
export class MessagePublisher {
  private readonly kafka: Kafka;
  private producer?: { producer: Producer; connected: Promise<void> };

  constructor(settings: KafkaSettings) {
    this.kafka = new Kafka({ ...settings, logLevel: logLevel.WARN });
  }

  async publish<T extends object>(topic: string, key: string, body: Unenveloped<T>): Promise<T> {
    const current = this.connect();
    const message = { id: randomUUID(), timestamp: new Date().toISOString(), ...body } as unknown as T;
    try {
      await current.connected;
      await current.producer.send({ topic, messages: [{ key, value: JSON.stringify(message) }] });
    } catch (error) {
      if (this.producer === current) this.producer = undefined;
      await current.producer.disconnect().catch(() => undefined);
      throw error;
    }
    return message;
  }

  async close(): Promise<void> {
    const current = this.producer;
    this.producer = undefined;
    if (current) await current.producer.disconnect();
  }

  private connect(): { producer: Producer; connected: Promise<void> } {
    if (!this.producer) {
      const producer = this.kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        allowAutoTopicCreation: true,
      });
      this.producer = { producer, connected: producer.connect() };
    }
    return this.producer;
  }

  /** Nest calls this on shutdown when the publisher is registered as a provider. */
  async onModuleDestroy(): Promise<void> {
    await this.close();
  }
}
