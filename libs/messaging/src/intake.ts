import {
  DEAD_LETTER_API_VERSION,
  DeadLetter,
  FieldError,
  Topics,
  describeErrors,
  parseMessage,
} from '@lvr/contracts';
import { MessagePublisher } from './publisher';

export interface RawKafkaMessage {
  topic: string;
  partition: number;
  offset: string;
  key?: Buffer | string | null;
  value: Buffer | string | null;
}

export type IntakeOutcome<T> =
  | { accepted: true; value: T; duplicate: boolean }
  | { accepted: false; reason: string; errors: FieldError[] };

type Constructor<T> = new () => T;

/**
 * Validates each consumed message against its contract. Invalid ones are written whole to the dead-letter topic
 * with the reason and reported back, so they never block the partition; redelivered ids are flagged as duplicates.
 */
export class ValidatedIntake<T extends { id: string }> {
  private readonly seen = new Set<string>();

  constructor(
    private readonly type: Constructor<T>,
    private readonly publisher: MessagePublisher,
    private readonly consumerName: string,
    private readonly rememberIds = 10000,
  ) {}

  async accept(message: RawKafkaMessage): Promise<IntakeOutcome<T>> {
    const raw = toBuffer(message.value);
    const parsed = parseMessage(this.type, raw);
    if (!parsed.ok) {
      const reason = describeErrors(parsed.errors);
      await this.deadLetter(message, raw, reason);
      return { accepted: false, reason, errors: parsed.errors };
    }
    const duplicate = this.seen.has(parsed.value.id);
    this.remember(parsed.value.id);
    return { accepted: true, value: parsed.value, duplicate };
  }

  private async deadLetter(message: RawKafkaMessage, raw: Buffer, reason: string): Promise<void> {
    const text = raw.toString('utf8');
    const isUtf8 = Buffer.from(text, 'utf8').equals(raw);
    await this.publisher.publish<DeadLetter>(
      Topics.deadLetter,
      keyOf(message) ?? `${message.topic}-${message.partition}`,
      {
        apiVersion: DEAD_LETTER_API_VERSION,
        sourceTopic: message.topic,
        partition: message.partition,
        offset: message.offset,
        key: keyOf(message),
        reason,
        payload: isUtf8 ? text : raw.toString('base64'),
        payloadEncoding: isUtf8 ? 'utf8' : 'base64',
        consumer: this.consumerName,
      },
    );
  }

  private remember(id: string): void {
    this.seen.add(id);
    if (this.seen.size > this.rememberIds) this.seen.delete(this.seen.values().next().value as string);
  }
}

function toBuffer(value: Buffer | string | null): Buffer {
  if (value === null) return Buffer.alloc(0);
  return Buffer.isBuffer(value) ? value : Buffer.from(value);
}

function keyOf(message: RawKafkaMessage): string | undefined {
  if (message.key === null || message.key === undefined) return undefined;
  return Buffer.isBuffer(message.key) ? message.key.toString('utf8') : message.key;
}

/** Best-effort id of an invalid message, so an event can still name the run it was meant for. */
export function extractField(raw: Buffer | string | null, field: string): string | undefined {
  try {
    const value = JSON.parse(toBuffer(raw).toString('utf8'))[field];
    return typeof value === 'string' && /^[a-z0-9-]{1,63}$/.test(value) ? value : undefined;
  } catch {
    return undefined;
  }
}
