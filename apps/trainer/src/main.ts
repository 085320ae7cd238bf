import 'reflect-metadata';
import { INestApplication } from '@nestjs/common';
import { JsonLogger, createServiceApp, runService, serveOpenApi } from '@lvr/service-kit';
import { loadTrainerConfig } from './config';
import { apiKeyGuard } from './http/api-keys';
import { trainerOpenApiDocument } from './http/openapi';
import { TrainerModule } from './trainer.module';

/**
 * Starts the trainer: HTTP (health probes, operator API) and, on the leader, the Kafka intake and workload watches.
 * `port` 0 picks a free port (tests). Logs are JSON lines (the services' shared logger).
 */
export async function startTrainer(port?: number, logger?: JsonLogger): Promise<INestApplication> {
  const config = loadTrainerConfig();
  const app = await createServiceApp(TrainerModule, logger ?? new JsonLogger(config.logLevel));
  app.use(apiKeyGuard(config.apiKeys));
  serveOpenApi(app, trainerOpenApiDocument(app));
  app.enableShutdownHooks();
  await app.listen(port ?? config.port, config.host);
  return app;
}

if (require.main === module)
  runService(async () => {
    const logger = new JsonLogger(loadTrainerConfig().logLevel);
    const app = await startTrainer(undefined, logger);
    logger.info('listening', { url: await app.getUrl() });
  });
