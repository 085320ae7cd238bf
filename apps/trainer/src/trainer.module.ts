import { Module } from '@nestjs/common';
import { HealthModule } from '@lvr/service-kit';
import { publisherProvider } from './publisher.provider';
import { TrainingRequestsController } from './training-requests.controller';

@Module({
  imports: [HealthModule],
  controllers: [TrainingRequestsController],
  providers: [publisherProvider],
})
export class TrainerModule {}
