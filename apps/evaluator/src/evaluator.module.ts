import { Module } from '@nestjs/common';
import { HealthModule } from '@lvr/service-kit';
import { MessagePublisher, kafkaSettingsFromEnv } from '@lvr/messaging';
import { EvaluationRequestsController } from './evaluation-requests.controller';

export const EVALUATOR_CLIENT_ID = 'lvr-evaluator';

@Module({
  imports: [HealthModule],
  controllers: [EvaluationRequestsController],
  providers: [
    {
      provide: MessagePublisher,
      useFactory: () => new MessagePublisher(kafkaSettingsFromEnv(EVALUATOR_CLIENT_ID)),
    },
  ],
})
export class EvaluatorModule {}
