import { DynamicModule, Module, Provider } from '@nestjs/common';
import { API_CONFIG, ApiConfig, defaultConfig } from './config/api-config';
import { Lifecycle } from './common/lifecycle';
import { HealthController } from './health/health.controller';
import { INFERENCE_BACKEND, InferenceBackend } from './inference/backend';
import { EngineBackend } from './inference/engine-backend';
import { JsonLogger, LOGGER } from './logging/json-logger';
import { BUNDLE_RESOLVER, BundleResolver, LocalBundleResolver } from './registry/bundle-resolver';
import { ModelRegistry } from './registry/model-registry';
import { ModelsController } from './registry/models.controller';
import { RegistryLoader } from './registry/registry-loader';

export interface AppModuleOptions {
  config?: Partial<ApiConfig>;
  /** Replaces the onnxruntime engine (unit tests of pure HTTP logic only). */
  backend?: InferenceBackend;
  resolver?: BundleResolver;
  logger?: JsonLogger;
}

/** The API's root module. `AppModule.forRoot()` with no options = production wiring from defaults. */
@Module({})
export class AppModule {
  static forRoot(options: AppModuleOptions = {}): DynamicModule {
    const config: ApiConfig = { ...defaultConfig(), ...options.config };
    const logger = options.logger ?? new JsonLogger(config.logLevel);
    const providers: Provider[] = [
      { provide: API_CONFIG, useValue: config },
      { provide: LOGGER, useValue: logger },
      { provide: INFERENCE_BACKEND, useValue: options.backend ?? new EngineBackend({ threads: config.engineThreads }) },
      { provide: BUNDLE_RESOLVER, useValue: options.resolver ?? new LocalBundleResolver() },
      Lifecycle,
      {
        provide: ModelRegistry,
        inject: [INFERENCE_BACKEND, BUNDLE_RESOLVER, LOGGER],
        useFactory: (backend: InferenceBackend, resolver: BundleResolver, log: JsonLogger) =>
          new ModelRegistry(backend, resolver, log),
      },
      RegistryLoader,
    ];
    return {
      module: AppModule,
      controllers: [HealthController, ModelsController],
      providers,
      exports: providers,
    };
  }
}
