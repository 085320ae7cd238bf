import { DynamicModule, Global, Module } from '@nestjs/common';
import { LoggerModule } from 'nestjs-pino';
import { Lifecycle } from './common/lifecycle';
import { requestIdOf } from './common/request-context';
import { API_CONFIG, type ApiConfig } from './config/api-config';
import { JsonLogger, LOGGER } from './logging/json-logger';
import { SequenceScheduler } from './scheduling/scheduler';

/**
 * What every feature module shares: the configuration, the logger (pino, through nestjs-pino), the serving lifecycle (drain) and the admission
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
    return {
      module: CoreModule,
      imports: [
        // Binds a child of the API's pino logger to each request (with its request_id) for JsonLogger to use; the
        // request line itself is the API's own (same fields as ever), so pino-http's automatic one is off.
        LoggerModule.forRoot({
          pinoHttp: {
            logger: logger.pino,
            genReqId: (req) => requestIdOf(req),
            customAttributeKeys: { reqId: 'request_id' },
            quietReqLogger: true,
            autoLogging: false,
          },
        }),
      ],
      providers,
      exports: providers,
    };
  }
}
