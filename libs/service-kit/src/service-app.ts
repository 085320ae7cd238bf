import { type DynamicModule, type INestApplication, Module, type Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { JsonLogger } from './logging/json-logger';
import { JsonLoggingModule, type JsonLoggingOptions } from './logging/json-logging.module';

@Module({})
class ServiceRootModule {}

/** A service's feature module with the JSON logger provided beside it (`LOGGER`, request-bound lines). */
export function withJsonLogging(
  feature: Type<unknown> | DynamicModule,
  logging: JsonLoggingOptions,
): DynamicModule {
  return { module: ServiceRootModule, imports: [JsonLoggingModule.forRoot(logging), feature] };
}

/** The Nest application of a service whose every line, Nest's own included, goes through `logger`. */
export function createServiceApp(feature: Type<unknown>, logger: JsonLogger): Promise<INestApplication> {
  return NestFactory.create(withJsonLogging(feature, { logger }), { logger });
}
