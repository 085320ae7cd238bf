import { randomUUID } from 'node:crypto';
import { Kafka, Producer, logLevel } from 'kafkajs';
import { KafkaSettings } from './config';

/** Body of a message without the envelope fields the publisher fills in. */
export type Unenveloped<T> = Omit<T, 'id' | 'timestamp'> &
  Partial<Pick<T & { id: string; timestamp: string }, 'id' | 'timestamp'>>;

/** Idempotent producer that stamps every message with an id and a timestamp and keys it by run/eval id. */
export class MessagePublisher {
  private readonly producer: Producer;
  private connected?: Promise<void>;

  constructor(settings: KafkaSettings) {
    const kafka = new Kafka({ ...settings, logLevel: logLevel.WARN });
    this.producer = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: true,
    });
  }

  async publish<T extends object>(topic: string, key: string, body: Unenveloped<T>): Promise<T> {
    this.connected ??= this.producer.connect();
    await this.connected;
    const message = { id: randomUUID(), timestamp: new Date().toISOString(), ...body } as unknown as T;
    await this.producer.send({ topic, messages: [{ key, value: JSON.stringify(message) }] });
    return message;
  }

  async close(): Promise<void> {
    if (this.connected) await this.producer.disconnect();
  }

  /** Nest calls this on shutdown when the publisher is registered as a provider. */
  async onModuleDestroy(): Promise<void> {
    await this.close();
  }
}
