import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import express, { type NextFunction, type Request, type Response } from 'express';
import { AppModule, AppModuleOptions } from './app.module';
import { API_CONFIG, ApiConfig } from './config/api-config';
import { apiKeyMiddleware } from './common/api-key.middleware';
import { requestIdMiddleware } from './common/request-context';
import { OpenAIExceptionFilter, bodyParserError } from './errors/openai-exception.filter';
import { JsonLogger, LOGGER } from './logging/json-logger';

/** Builds the configured Nest application (not listening yet). Used by main.ts and by the tests. */
export async function createApp(options: AppModuleOptions = {}): Promise<NestExpressApplication> {
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(options), {
    bodyParser: false,
    bufferLogs: false,
    logger: false,
  });
  const config = app.get<ApiConfig>(API_CONFIG);
  const logger = app.get<JsonLogger>(LOGGER);
  app.useLogger(logger);
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  app.use(requestIdMiddleware);
  app.use(apiKeyMiddleware(config.apiKeys));
  const json = express.json({ limit: config.maxBodyBytes, strict: true, type: ['application/json', 'application/*+json'] });
  app.use((req: Request, res: Response, next: NextFunction) =>
    json(req, res, (error?: unknown) => next(error === undefined ? undefined : (bodyParserError(error) ?? error))),
  );
  app.useGlobalFilters(new OpenAIExceptionFilter(logger));
  app.enableShutdownHooks(['SIGINT']);
  return app;
}
