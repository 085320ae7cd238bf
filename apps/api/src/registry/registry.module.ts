import { DynamicModule, Module, Provider } from '@nestjs/common';
import { MessagePublisher } from '@lvr/messaging';
import { objectStoreConfigFromEnv } from '@lvr/storage';
import { API_CONFIG, type ApiConfig } from '../config/api-config';
import {
  API_PUBLISHER,
  MODEL_EVENTS_SOURCE,
  ModelHotLoader,
  type ModelEventsSource,
} from '../hotload/model-hot-loader';
import { INFERENCE_BACKEND, type InferenceBackend } from '../inference/backend';
import { EngineBackend } from '../inference/engine-backend';
import { JsonLogger, LOGGER } from '@lvr/service-kit';
import { BUNDLE_RESOLVER, LocalBundleResolver, type BundleResolver } from './bundle-resolver';
import { ModelRegistry } from './model-registry';
import { ModelsController } from './models.controller';
import { RegistryLoader } from './registry-loader';
import { S3BundleResolver } from './s3-bundle-resolver';

export interface RegistryModuleOptions {
  /** Replaces the onnxruntime engine (unit tests of pure HTTP logic only). */
  backend?: InferenceBackend;
  resolver?: BundleResolver;
  /** Source of `lvr.models.published` events; default: Kafka when LVR_KAFKA_BROKERS is set, else none. */
  modelEvents?: ModelEventsSource | null;
}

/** The served models: the engine backend, bundle resolution, startup loading and hot-loading of published versions. */
@Module({})
export class RegistryModule {
  static forRoot(options: RegistryModuleOptions = {}): DynamicModule {
    const providers: Provider[] = [
      {
        provide: INFERENCE_BACKEND,
        inject: [API_CONFIG],
        useFactory: (config: ApiConfig) =>
          options.backend ??
          new EngineBackend({
            threads: config.engineThreads,
            executionProvider: config.executionProvider,
            attentionKernel: config.gpuAttention,
            fusedProjections: config.fusedProjections,
            int4MixedGemmFromSlots: config.int4MixedGemmFromSlots,
            maxBatchSize: config.maxConcurrentSequences,
            maxModelLen: config.maxModelLen,
          }),
      },
      { provide: BUNDLE_RESOLVER, useFactory: () => options.resolver ?? defaultResolver() },
      {
        provide: ModelRegistry,
        inject: [INFERENCE_BACKEND, BUNDLE_RESOLVER, LOGGER, API_CONFIG],
        useFactory: (
          backend: InferenceBackend,
          resolver: BundleResolver,
          log: JsonLogger,
          config: ApiConfig,
        ) => new ModelRegistry(backend, resolver, log, config.maxPreviousVersions),
      },
      RegistryLoader,
      {
        provide: MODEL_EVENTS_SOURCE,
        useValue: options.modelEvents === undefined ? 'auto' : options.modelEvents,
      },
      {
        provide: API_PUBLISHER,
        inject: [API_CONFIG],
        useFactory: (config: ApiConfig) =>
          config.kafkaBrokers.length > 0
            ? new MessagePublisher({ clientId: 'lvr-api', brokers: config.kafkaBrokers })
            : null,
      },
      ModelHotLoader,
    ];
    return {
      module: RegistryModule,
      global: true,
      providers,
      controllers: [ModelsController],
      exports: [INFERENCE_BACKEND, ModelRegistry, RegistryLoader, ModelHotLoader],
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
