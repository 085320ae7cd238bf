import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import express, { type NextFunction, type Request, type Response } from 'express';
import { AppModule, AppModuleOptions } from './app.module';
import { API_CONFIG, ApiConfig } from './config/api-config';
import { apiKeyGuard } from './common/api-key.middleware';
import { Lifecycle } from './common/lifecycle';
import { ApiMetrics } from './metrics/api-metrics';
import { requestIdMiddleware, requestIdOf, type RequestWithId } from './common/request-context';
import { bodyParserError } from './errors/error-response';
import { OpenAIExceptionFilter } from './errors/openai-exception.filter';
import { JsonLogger, LOGGER } from '@lvr/service-kit';
import { buildOpenApiDocument, OpenApiDocument } from './openapi/openapi';

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
  const lifecycle = app.get(Lifecycle);
  const metrics = app.get(ApiMetrics);
  app.use(requestIdMiddleware);
  app.use(lifecycle.track);
  app.use((req: Request, res: Response, next: NextFunction) => {
    res.on('finish', () => {
      metrics.httpRequests.inc({ method: req.method, status: String(res.statusCode) });
      const started = (req as RequestWithId).startedAt;
      logger.emit(res.statusCode >= 500 ? 'warn' : 'debug', 'request', {
        request_id: requestIdOf(req),
        method: req.method,
        path: req.path,
        status: res.statusCode,
        ms: started ? Number(process.hrtime.bigint() - started) / 1e6 : undefined,
      });
    });
    next();
  });
  app.use(apiKeyGuard(config.apiKeys));
  const json = express.json({
    limit: config.maxBodyBytes,
    strict: true,
    type: ['application/json', 'application/*+json'],
  });
  app.use((req: Request, res: Response, next: NextFunction) =>
    json(req, res, (error?: unknown) =>
      next(error === undefined ? undefined : (bodyParserError(error) ?? error)),
    ),
  );
  app.useGlobalFilters(new OpenAIExceptionFilter(logger));
  app.get(OpenApiDocument).set(buildOpenApiDocument(app, config));
  return app;
}

export interface RunningServer {
  app: NestExpressApplication;
  url: string;
  /** Stops accepting work, waits for in-flight requests (up to the drain timeout), then closes the app. */
  drain(): Promise<{ timedOut: boolean }>;
}

/** Creates the app and listens on the configured host/port. */
export async function serve(options: AppModuleOptions & { config: ApiConfig }): Promise<RunningServer> {
  const app = await createApp(options);
  const config = options.config;
  await app.listen(config.port, config.host);
  const address = app.getHttpServer().address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const lifecycle = app.get(Lifecycle);
  let draining: Promise<{ timedOut: boolean }> | undefined;
  const drain = (): Promise<{ timedOut: boolean }> =>
    (draining ??= (async () => {
      lifecycle.startDraining();
      const server = app.getHttpServer();
      server.close(); // no new connections; keep-alive requests meanwhile get 503
      server.closeIdleConnections?.();
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        lifecycle.whenIdle().then(() => false),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), config.drainTimeoutMs))),
      ]);
      clearTimeout(timer);
      server.closeAllConnections?.();
      await app.close();
      return { timedOut };
    })());
  return { app, url: `http://${host}:${port}`, drain };
}
