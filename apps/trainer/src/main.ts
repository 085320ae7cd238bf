import 'reflect-metadata';
import { INestApplication } from '@nestjs/common';
import { kafkaSettingsFromEnv } from '@lvr/messaging';
import { portFromEnv, runService, startKafkaService } from '@lvr/service-kit';
import { TRAINER_CLIENT_ID } from './publisher.provider';
import { TrainerModule } from './trainer.module';

export async function startTrainer(port = portFromEnv('TRAINER_PORT', 8081)): Promise<INestApplication> {
  return startKafkaService({
    module: TrainerModule,
    kafka: kafkaSettingsFromEnv(TRAINER_CLIENT_ID),
    groupId: process.env.TRAINER_GROUP_ID || 'lvr-trainer',
    host: process.env.TRAINER_HOST || '127.0.0.1',
    port,
  });
}

if (require.main === module) runService('trainer', () => startTrainer());
