import { DynamicModule, Module, Provider } from '@nestjs/common';
import { API_CONFIG, ApiConfig, defaultConfig } from './config/api-config';
import { Lifecycle } from './common/lifecycle';
import { ChatController } from './chat/chat.controller';
import { ChatService } from './chat/chat.service';
import { GenerationEvents } from './chat/generation-events';
import { HealthController } from './health/health.controller';
import { ModelHotLoader, MODEL_EVENTS_SOURCE, type ModelEventsSource } from './hotload/model-hot-loader';
import { INFERENCE_BACKEND, InferenceBackend } from './inference/backend';
import { EngineBackend } from './inference/engine-backend';
import { JsonLogger, LOGGER } from './logging/json-logger';
import { ImageLoader, systemResolver, type Resolver } from './media/image-loader';
import { ApiMetrics } from './metrics/api-metrics';
import { MetricsController } from './metrics/metrics.controller';
import { DocsController } from './openapi/docs.controller';
import { objectStoreConfigFromEnv } from '@lvr/storage';
import { BUNDLE_RESOLVER, BundleResolver, LocalBundleResolver } from './registry/bundle-resolver';
import { S3BundleResolver } from './registry/s3-bundle-resolver';
import { ModelRegistry } from './registry/model-registry';
import { ModelsController } from './registry/models.controller';
import { RegistryLoader } from './registry/registry-loader';
import { SequenceScheduler } from './scheduling/scheduler';

export interface AppModuleOptions {
  config?: Partial<ApiConfig>;
  /** Replaces the onnxruntime engine (unit tests of pure HTTP logic only). */
  backend?: InferenceBackend;
  resolver?: BundleResolver;
  logger?: JsonLogger;
  /** DNS resolution for image URLs (SSRF tests inject one that never leaves the machine). */
  dnsResolver?: Resolver;
  /** Source of `lvr.models.published` events; default: Kafka when LVR_KAFKA_BROKERS is set, else none. */
  modelEvents?: ModelEventsSource | null;
}

/** The API's root module. `AppModule.forRoot()` with no options = production wiring from defaults. */
@Module({})
export class AppModule {
  static forRoot(options: AppModuleOptions = {}): DynamicModule {
    const config: ApiConfig = {
      ...defaultConfig(),
      ...options.config,
      images: { ...defaultConfig().images, ...options.config?.images },
    };
    const logger = options.logger ?? new JsonLogger(config.logLevel);
    const scheduler = new SequenceScheduler(config.maxConcurrentSequences, config.maxQueuedRequests);
    const providers: Provider[] = [
      { provide: API_CONFIG, useValue: config },
      { provide: LOGGER, useValue: logger },
      {
        provide: INFERENCE_BACKEND,
        useValue:
          options.backend ??
          new EngineBackend({
            threads: config.engineThreads,
            maxBatchSize: config.maxConcurrentSequences,
            maxModelLen: config.maxModelLen,
          }),
      },
      { provide: BUNDLE_RESOLVER, useValue: options.resolver ?? defaultResolver() },
      { provide: SequenceScheduler, useValue: scheduler },
      { provide: ApiMetrics, useValue: new ApiMetrics(scheduler) },
      {
        provide: ImageLoader,
        useValue: new ImageLoader(config.images, options.dnsResolver ?? systemResolver),
      },
      {
        provide: MODEL_EVENTS_SOURCE,
        useValue: options.modelEvents === undefined ? 'auto' : options.modelEvents,
      },
      Lifecycle,
      GenerationEvents,
      {
        provide: ModelRegistry,
        inject: [INFERENCE_BACKEND, BUNDLE_RESOLVER, LOGGER],
        useFactory: (backend: InferenceBackend, resolver: BundleResolver, log: JsonLogger) =>
          new ModelRegistry(backend, resolver, log, config.maxPreviousVersions),
      },
      RegistryLoader,
      ModelHotLoader,
      ChatService,
    ];
    return {
      module: AppModule,
      controllers: [HealthController, ModelsController, ChatController, MetricsController, DocsController],
      providers,
      exports: providers,
    };
  }
}

/** MinIO-backed when LVR_S3_ENDPOINT and credentials are set, local paths only otherwise. */
function defaultResolver(): BundleResolver {
  try {
    return new S3BundleResolver(objectStoreConfigFromEnv());
  } catch {
    return new LocalBundleResolver();
  }
}
