import { Inject, Injectable, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { ModelPublished } from '@lvr/contracts';
import { MessagePublisher, ValidatedIntake, type RawKafkaMessage } from '@lvr/messaging';
import { API_CONFIG, type ApiConfig } from '../config/api-config';
import { JsonLogger, LOGGER } from '@lvr/service-kit';
import { ModelRegistry } from '../registry/model-registry';
import { KafkaModelEvents } from './kafka-model-events';

/** Processes one `lvr.models.published` record; `replay` is true for those published before this process subscribed. */
export type ModelEventHandler = (event: RawKafkaMessage, replay: boolean) => Promise<void>;

/** Where model publications come from. The Kafka implementation is used when brokers are configured. */
export interface ModelEventsSource {
  /**
   * Delivers every publication from the oldest kept one; `onCaughtUp` runs once every event published before the
   * subscription was handled (then live ones follow). `handle` resolves once an event is processed.
   */
  start(handle: ModelEventHandler, onCaughtUp: () => Promise<void>): Promise<void>;
  stop(): Promise<void>;
  /** Named in dead letters as the consumer that refused a record. */
  readonly consumerName: string;
}

export const MODEL_EVENTS_SOURCE = Symbol('ModelEventsSource');
/** The `MessagePublisher` the API writes dead letters with; null without Kafka. */
export const API_PUBLISHER = Symbol('ApiPublisher');

/**
 * Serves the newest published version of every model, after a restart too. At startup it replays
 * `lvr.models.published` (remembering every version, so `<id>@<version>` can be loaded on demand), then loads each
 * model's newest announced version, falling back to older ones while a bundle is no longer loadable; readiness waits
 * for this. Afterwards each announcement is validated and hot-loaded next to the serving version, which finishes its
 * in-flight requests. Redeliveries are ignored; invalid live announcements are dead-lettered (replayed ones were
 * when first delivered). The API runs fine without Kafka: with no brokers configured this does nothing.
 */
@Injectable()
export class ModelHotLoader implements OnApplicationBootstrap, OnApplicationShutdown {
  private source: ModelEventsSource | null = null;
  /** Validation, duplicate ids and dead letters: the intake every consumer of the platform shares. */
  private intake: ValidatedIntake<ModelPublished> | undefined;
  private readonly loadedVersions = new Map<string, string>();
  /** Replayed announcements per model id, in publication order (the topic is keyed by model id). */
  private readonly replayed = new Map<string, ModelPublished[]>();
  private started: Promise<boolean> = Promise.resolve(false);
  private caughtUp!: () => void;
  private readonly whenCaughtUpPromise = new Promise<void>((resolve) => (this.caughtUp = resolve));

  constructor(
    @Inject(API_CONFIG) private readonly config: ApiConfig,
    @Inject(ModelRegistry) private readonly registry: ModelRegistry,
    @Inject(LOGGER) private readonly logger: JsonLogger,
    @Inject(MODEL_EVENTS_SOURCE) private readonly configured: ModelEventsSource | null | 'auto',
    @Inject(API_PUBLISHER) private readonly publisher: MessagePublisher | null,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    this.source =
      this.configured === 'auto'
        ? this.config.kafkaBrokers.length > 0
          ? new KafkaModelEvents(this.config.kafkaBrokers, this.logger)
          : null
        : this.configured;
    if (!this.source) {
      this.caughtUp();
      return;
    }
    const source = this.source;
    if (!this.publisher)
      throw new Error('model events need Kafka brokers (LVR_KAFKA_BROKERS) for dead letters');
    this.intake = new ValidatedIntake(ModelPublished, this.publisher, source.consumerName, {
      forbidUnknown: false,
    });
    this.registry.setCatchingUp(true);
    // Kafka may be down at boot; the API serves its configured models regardless.
    this.started = source
      .start(
        (event, replay) => this.handle(event, replay),
        () => this.catchUp(),
      )
      .then(
        () => true,
        (error: unknown) => {
          this.logger.emit('error', 'model events unavailable', { error: (error as Error).message });
          this.registry.setCatchingUp(false);
          this.caughtUp();
          return false;
        },
      );
  }

  /** Resolves true once subscribed (false without a source or when subscribing failed). */
  whenSubscribed(): Promise<boolean> {
    return this.started;
  }

  /** Resolves once the startup replay was applied (immediately without a source). */
  whenCaughtUp(): Promise<void> {
    return this.whenCaughtUpPromise;
  }

  /** Processes one event; never throws (a bad message must not block the partition). */
  async handle(event: RawKafkaMessage, replay = false): Promise<void> {
    if (!this.intake) return;
    // Replayed records were judged (and dead-lettered) when first delivered.
    const outcome = await this.intake.accept(event, { deadLetter: !replay }).catch((error: unknown) => {
      this.logger.emit('warn', 'model event not dead-lettered', { error: (error as Error).message });
      return undefined;
    });
    if (!outcome) return;
    if (!outcome.accepted) {
      this.logger.emit(replay ? 'debug' : 'warn', 'model event rejected', {
        partition: event.partition,
        offset: event.offset,
        reason: `invalid ModelPublished: ${outcome.reason}`,
      });
      return;
    }
    const message = outcome.value;
    this.registry.remember(message.modelId, message.version, message.bundleUri);
    if (replay) {
      const list = this.replayed.get(message.modelId) ?? [];
      list.push(message);
      this.replayed.set(message.modelId, list);
      return;
    }
    if (outcome.duplicate || this.loadedVersions.get(message.modelId) === message.version) return;
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
      await this.intake.reject(event, reason).catch(() => undefined);
    }
  }

  /**
   * After the replay: each model's newest announced version becomes current (after the configured models loaded, so
   * that they cannot replace it); when its bundle cannot be loaded any more, the next older one is tried.
   */
  private async catchUp(): Promise<void> {
    await this.registry.whenStartupLoaded();
    for (const [modelId, announced] of this.replayed) {
      let served = false;
      for (const message of [...announced].reverse()) {
        if (this.registry.get(modelId)?.version === message.version) {
          served = true;
          break;
        }
        try {
          await this.registry.load({ id: modelId, uri: message.bundleUri, version: message.version });
          this.loadedVersions.set(modelId, message.version);
          served = true;
          break;
        } catch (error) {
          // Stale announcements (bundles since deleted) are expected on a long-lived topic: a warning, not an error.
          this.logger.emit('warn', 'published version not loadable at startup; trying an older one', {
            model: modelId,
            version: message.version,
            uri: message.bundleUri,
            error: (error as Error).message,
          });
        }
      }
      if (!served && this.registry.get(modelId))
        this.logger.emit('warn', 'no announced version loads; serving the configured one', {
          model: modelId,
        });
    }
    this.replayed.clear();
    this.registry.setCatchingUp(false);
    this.caughtUp();
    this.logger.info('model versions caught up', { models: this.registry.list().map((e) => e.id) });
  }

  async onApplicationShutdown(): Promise<void> {
    await this.source?.stop().catch(() => undefined);
  }
}
