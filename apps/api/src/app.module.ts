import { DynamicModule, Module } from '@nestjs/common';
import { ChatModule } from './chat/chat.module';
import { ApiConfig, defaultConfig } from './config/api-config';
import { CoreModule } from './core.module';
import { HealthController } from './health/health.controller';
import type { ModelEventsSource } from './hotload/model-hot-loader';
import type { InferenceBackend } from './inference/backend';
import { JsonLogger } from '@lvr/service-kit';
import type { Resolver } from './media/image-loader';
import { MediaModule } from './media/media.module';
import { MetricsModule } from './metrics/metrics.module';
import { DocsModule } from './openapi/docs.module';
import type { BundleResolver } from './registry/bundle-resolver';
import { RegistryModule } from './registry/registry.module';

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
    return {
      module: AppModule,
      imports: [
        CoreModule.forRoot(config, options.logger ?? new JsonLogger(config.logLevel)),
        RegistryModule.forRoot(options),
        MediaModule.forRoot(options.dnsResolver),
        MetricsModule,
        ChatModule,
        DocsModule,
      ],
      controllers: [HealthController],
    };
  }
}
