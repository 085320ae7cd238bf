import 'reflect-metadata';
import { INestApplication } from '@nestjs/common';
import { Topics } from '@lvr/contracts';
import { kafkaSettingsFromEnv } from '@lvr/messaging';
import { JsonLogger, runService, serveOpenApi, startKafkaService } from '@lvr/service-kit';
import { evaluatorConfigFromEnv } from './config';
import { EVALUATOR_CLIENT_ID, EvaluatorModule } from './evaluator.module';
import { evaluatorOpenApiDocument } from './http/openapi';

/** Starts the evaluator (Kafka intake, schedules, read API); `port` 0 picks a free port (tests). */
export async function startEvaluator(port?: number): Promise<INestApplication> {
  const config = evaluatorConfigFromEnv();
  const logger = new JsonLogger(config.logLevel);
  const app = await startKafkaService({
    module: EvaluatorModule,
    logger,
    kafka: kafkaSettingsFromEnv(EVALUATOR_CLIENT_ID),
    groupId: config.groupId,
    topics: [Topics.evaluationRequests, Topics.modelsPublished],
    host: config.host,
    port: port ?? config.port,
    beforeListen: (created) => serveOpenApi(created, evaluatorOpenApiDocument(created)),
  });
  const address = app.getHttpServer().address();
  if (address && typeof address === 'object')
    logger.info('listening', { url: `http://${address.address}:${address.port}` });
  return app;
}

if (require.main === module) runService(() => startEvaluator());
