import 'reflect-metadata';
import { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { runService } from '@lvr/service-kit';
import { loadTrainerConfig } from './config';
import { apiKeyGuard } from './http/api-keys';
import { TrainerModule } from './trainer.module';

/**
 * Starts the trainer: HTTP (health probes, operator API) and, on the leader, the Kafka intake and workload watches.
 * `port` 0 picks a free port (tests).
 */
export async function startTrainer(port?: number): Promise<INestApplication> {
  const config = loadTrainerConfig();
  const app = await NestFactory.create(TrainerModule, { logger: ['error', 'warn', 'log'] });
  app.use(apiKeyGuard(config.apiKeys));
  app.enableShutdownHooks();
  await app.listen(port ?? config.port, config.host);
  return app;
}

if (require.main === module)
  runService('trainer', async () => {
    const app = await startTrainer();
    process.stdout.write(`trainer listening on ${await app.getUrl()}\n`);
  });
