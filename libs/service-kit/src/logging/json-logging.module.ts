import type { IncomingMessage } from 'node:http';
import { type DynamicModule, Global, Module } from '@nestjs/common';
import { LoggerModule } from 'nestjs-pino';
import { JsonLogger, LOGGER } from './json-logger';

export interface JsonLoggingOptions {
  logger: JsonLogger;
  /** The id a request's lines carry as `request_id` (default: nestjs-pino's counter). */
  requestId?: (req: IncomingMessage) => string;
}

/**
 * Provides the service's JsonLogger (`LOGGER`) everywhere and, through nestjs-pino, binds a child of its pino logger
 * to each HTTP request, so lines written while serving one carry its `request_id`. The request line itself is the
 * service's own, so pino-http's automatic one is off.
 */
@Global()
@Module({})
export class JsonLoggingModule {
  static forRoot(options: JsonLoggingOptions): DynamicModule {
    const provider = { provide: LOGGER, useValue: options.logger };
    return {
      module: JsonLoggingModule,
      imports: [
        LoggerModule.forRoot({
          pinoHttp: {
            logger: options.logger.pino,
            ...(options.requestId ? { genReqId: options.requestId } : {}),
            customAttributeKeys: { reqId: 'request_id' },
            quietReqLogger: true,
            autoLogging: false,
          },
        }),
      ],
      providers: [provider],
      exports: [provider],
    };
  }
}
