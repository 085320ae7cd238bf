import { DynamicModule, Global, Module } from '@nestjs/common';
import { Lifecycle } from './common/lifecycle';
import { API_CONFIG, type ApiConfig } from './config/api-config';
import { JsonLogger, LOGGER } from './logging/json-logger';
import { SequenceScheduler } from './scheduling/scheduler';

/**
 * What every feature module shares: the configuration, the logger, the serving lifecycle (drain) and the admission
 * scheduler (chat admits into it, metrics read its gauges).
 */
@Global()
@Module({})
export class CoreModule {
  static forRoot(config: ApiConfig, logger: JsonLogger): DynamicModule {
    const providers = [
      { provide: API_CONFIG, useValue: config },
      { provide: LOGGER, useValue: logger },
      Lifecycle,
      {
        provide: SequenceScheduler,
        inject: [API_CONFIG],
        useFactory: (cfg: ApiConfig) =>
          new SequenceScheduler(cfg.maxConcurrentSequences, cfg.maxQueuedRequests),
      },
    ];
    return { module: CoreModule, providers, exports: providers };
  }
}
