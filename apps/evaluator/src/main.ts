import 'reflect-metadata';
import { INestApplication } from '@nestjs/common';
import { Topics } from '@lvr/contracts';
import { kafkaSettingsFromEnv } from '@lvr/messaging';
import { portFromEnv, runService, startKafkaService } from '@lvr/service-kit';
import { EVALUATOR_CLIENT_ID, EvaluatorModule } from './evaluator.module';

export async function startEvaluator(port = portFromEnv('EVALUATOR_PORT', 8082)): Promise<INestApplication> {
  const app = await startKafkaService({
    module: EvaluatorModule,
    kafka: kafkaSettingsFromEnv(EVALUATOR_CLIENT_ID),
    groupId: process.env.EVALUATOR_GROUP_ID || 'lvr-evaluator',
    topics: [Topics.evaluationRequests, Topics.modelsPublished],
    host: process.env.EVALUATOR_HOST || '127.0.0.1',
    port,
  });
  const address = app.getHttpServer().address();
  if (address && typeof address === 'object')
    process.stdout.write(
      `${JSON.stringify({ msg: 'listening', url: `http://${address.address}:${address.port}` })}\n`,
    );
  return app;
}

if (require.main === module) runService('evaluator', () => startEvaluator());
