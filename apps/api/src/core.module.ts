import { DynamicModule, Global, Module } from '@nestjs/common';
import { JsonLogger, JsonLoggingModule } from '@lvr/service-kit';
import { Lifecycle } from './common/lifecycle';
import { requestIdOf } from './common/request-context';
import { API_CONFIG, type ApiConfig } from './config/api-config';
import { SequenceScheduler } from './scheduling/scheduler';

/**
 * What every feature module shares: the configuration, the logger (libs/service-kit's JSON logger, pino through
 * nestjs-pino), the serving lifecycle (drain) and the admission scheduler (chat admits into it, metrics read its gauges).
 */
@Global()
@Module({})
export class CoreModule {
  static forRoot(config: ApiConfig, logger: JsonLogger): DynamicModule {
    const providers = [
      { provide: API_CONFIG, useValue: config },
      Lifecycle,
      {
        provide: SequenceScheduler,
        inject: [API_CONFIG],
        useFactory: (cfg: ApiConfig) =>
          new SequenceScheduler(cfg.maxConcurrentSequences, cfg.maxQueuedRequests),
      },
    ];
    return {
      module: CoreModule,
      // Request lines carry the id the API's request-id middleware gave the request (or the client sent).
      imports: [JsonLoggingModule.forRoot({ logger, requestId: requestIdOf })],
      providers,
      exports: providers,
    };
  }
}
