import { Inject, Injectable, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { parseMessage, describeErrors, ModelPublished } from '@lvr/contracts';
import { API_CONFIG, type ApiConfig } from '../config/api-config';
import { JsonLogger, LOGGER } from '../logging/json-logger';
import { ModelRegistry } from '../registry/model-registry';
import { KafkaModelEvents } from './kafka-model-events';

/** A raw `lvr.models.published` record, as delivered. */
export interface RawModelEvent {
  value: Buffer | null;
  key?: string;
  partition: number;
  offset: string;
}

/** Where model publications come from. The Kafka implementation is used when brokers are configured. */
export interface ModelEventsSource {
  /** Starts delivering; `handle` resolves once the event is processed (then the offset may be committed). */
  start(handle: (event: RawModelEvent) => Promise<void>): Promise<void>;
  /** Reports an event that could not be accepted (dead-letter). */
  reject(event: RawModelEvent, reason: string): Promise<void>;
  stop(): Promise<void>;
}

export const MODEL_EVENTS_SOURCE = Symbol('ModelEventsSource');

/**
 * Hot-loads model versions announced on `lvr.models.published`: validates the message, loads the bundle next to
 * the serving version and swaps it in (in-flight requests finish on the old one). Redeliveries are ignored.
 * The API runs fine without Kafka: with no brokers configured this does nothing.
 */
@Injectable()
export class ModelHotLoader implements OnApplicationBootstrap, OnApplicationShutdown {
  private source: ModelEventsSource | null = null;
  private readonly seen = new Set<string>();
  private readonly loadedVersions = new Map<string, string>();
  private started: Promise<boolean> = Promise.resolve(false);

  constructor(
    @Inject(API_CONFIG) private readonly config: ApiConfig,
    @Inject(ModelRegistry) private readonly registry: ModelRegistry,
    @Inject(LOGGER) private readonly logger: JsonLogger,
    @Inject(MODEL_EVENTS_SOURCE) private readonly configured: ModelEventsSource | null | 'auto',
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    this.source =
      this.configured === 'auto'
        ? this.config.kafkaBrokers.length > 0
          ? new KafkaModelEvents(this.config.kafkaBrokers, this.logger)
          : null
        : this.configured;
    if (!this.source) return;
    const source = this.source;
    // Kafka may be down at boot; the API serves its configured models regardless.
    this.started = source
      .start((event) => this.handle(event))
      .then(
        () => true,
        (error: unknown) => {
          this.logger.emit('error', 'model events unavailable', { error: (error as Error).message });
          return false;
        },
      );
  }

  /** Resolves true once subscribed (false without a source or when subscribing failed). */
  whenSubscribed(): Promise<boolean> {
    return this.started;
  }

  /** Processes one event; never throws (a bad message must not block the partition). */
  async handle(event: RawModelEvent): Promise<void> {
    const parsed = parseMessage(ModelPublished, event.value ?? Buffer.alloc(0), { forbidUnknown: false });
    if (!parsed.ok) {
      const reason = `invalid ModelPublished: ${describeErrors(parsed.errors)}`;
      this.logger.emit('warn', 'model event rejected', {
        partition: event.partition,
        offset: event.offset,
        reason,
      });
      await this.source?.reject(event, reason).catch(() => undefined);
      return;
    }
    const message = parsed.value;
    if (this.seen.has(message.id) || this.loadedVersions.get(message.modelId) === message.version) return;
    this.seen.add(message.id);
    try {
      await this.registry.load({ id: message.modelId, uri: message.bundleUri, version: message.version });
      this.loadedVersions.set(message.modelId, message.version);
    } catch (error) {
      const reason = `cannot load ${message.bundleUri}: ${(error as Error).message}`;
      this.logger.emit('error', 'model hot-load failed', {
        model: message.modelId,
        version: message.version,
        reason,
      });
      await this.source?.reject(event, reason).catch(() => undefined);
    }
  }

  async onApplicationShutdown(): Promise<void> {
    await this.source?.stop().catch(() => undefined);
  }
}
