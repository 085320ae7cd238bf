import {
  DEAD_LETTER_API_VERSION,
  DeadLetter,
  FieldError,
  Topics,
  describeErrors,
  parseMessage,
} from '@lvr/contracts';
import { ProcessedIdStore } from './processed-ids';
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

export interface IntakeOptions {
  /**
   * Where processed ids outlive this process (for example `KafkaProcessedIds`). Without it, duplicates are caught
   * only within this process's lifetime.
   */
  processedIds?: ProcessedIdStore;
  /** How many ids this process also remembers in memory (default 10000). */
  rememberIds?: number;
}

/**
 * Validates each consumed message against its contract. Invalid ones are written whole to the dead-letter topic
 * with the reason and reported back, so they never block the partition; redelivered ids are flagged as duplicates.
 *
 * Two ways to use it:
 * - `process(message, effect)` runs `effect` only for an id not processed yet and records the id after the effect
 *   succeeded. With `options.processedIds` this holds across restarts: a message redelivered to a restarted consumer
 *   (its offset is committed only after the handler returns) is recognised and not acted on again, while a message
 *   whose effect failed or never finished is acted on when it comes back.
 * - `accept(message)` only validates and flags duplicates; the id is remembered in memory at once, and in
 *   `processedIds` only when the caller calls `complete(id)` after its effect.
 */
export class ValidatedIntake<T extends { id: string }> {
  private readonly seen = new Set<string>();
  private readonly options: IntakeOptions;

  constructor(
    private readonly type: Constructor<T>,
    private readonly publisher: MessagePublisher,
    private readonly consumerName: string,
    options: IntakeOptions | number = {},
  ) {
    this.options = typeof options === 'number' ? { rememberIds: options } : options;
  }

  async accept(message: RawKafkaMessage): Promise<IntakeOutcome<T>> {
    const outcome = await this.validate(message);
    if (!outcome.accepted) return outcome;
    const duplicate = await this.isProcessed(outcome.value.id);
    this.remember(outcome.value.id);
    return { ...outcome, duplicate };
  }

  async process(message: RawKafkaMessage, effect: (value: T) => Promise<void>): Promise<IntakeOutcome<T>> {
    const outcome = await this.validate(message);
    if (!outcome.accepted) return outcome;
    if (await this.isProcessed(outcome.value.id)) return { ...outcome, duplicate: true };
    await effect(outcome.value);
    await this.complete(outcome.value.id);
    return outcome;
  }

  /** Records that the effects of message `id` are done. */
  async complete(id: string): Promise<void> {
    await this.options.processedIds?.add(id);
    this.remember(id);
  }

  private async validate(message: RawKafkaMessage): Promise<IntakeOutcome<T>> {
    const raw = toBuffer(message.value);
    const parsed = parseMessage(this.type, raw);
    if (!parsed.ok) {
      const reason = describeErrors(parsed.errors);
      await this.deadLetter(message, raw, reason);
      return { accepted: false, reason, errors: parsed.errors };
    }
    return { accepted: true, value: parsed.value, duplicate: false };
  }

  private async isProcessed(id: string): Promise<boolean> {
    return this.seen.has(id) || ((await this.options.processedIds?.has(id)) ?? false);
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
    if (this.seen.size > (this.options.rememberIds ?? 10000))
      this.seen.delete(this.seen.values().next().value as string);
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
