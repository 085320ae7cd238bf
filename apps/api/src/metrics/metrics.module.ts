import { Module } from '@nestjs/common';
import { SequenceScheduler } from '../scheduling/scheduler';
import { ApiMetrics } from './api-metrics';
import { MetricsController } from './metrics.controller';

/** The Prometheus metrics and their `/metrics` endpoint. */
@Module({
  providers: [
    {
      provide: ApiMetrics,
      inject: [SequenceScheduler],
      useFactory: (scheduler: SequenceScheduler) => new ApiMetrics(scheduler),
    },
  ],
  controllers: [MetricsController],
  exports: [ApiMetrics],
})
export class MetricsModule {}
