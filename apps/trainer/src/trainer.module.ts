import { Module, type OnApplicationBootstrap, type OnApplicationShutdown, Inject } from '@nestjs/common';
import { MessagePublisher, kafkaSettingsFromEnv } from '@lvr/messaging';
import { HealthModule, Readiness } from '@lvr/service-kit';
import { TrainerConfig, loadTrainerConfig } from './config';
import { RunsController } from './http/runs.controller';
import { TRAINER_CLIENT_ID, publisherProvider } from './publisher.provider';
import { TrainerRuntime, createExecutor, loadKubeConfig } from './runtime';
import { RunLifecycle } from './runs/lifecycle';

export const TRAINER_CONFIG = Symbol('TRAINER_CONFIG');

@Module({
  imports: [HealthModule],
  controllers: [RunsController],
  providers: [
    publisherProvider,
    { provide: TRAINER_CONFIG, useFactory: () => loadTrainerConfig() },
    {
      provide: TrainerRuntime,
      inject: [TRAINER_CONFIG, MessagePublisher, Readiness],
      useFactory: (config: TrainerConfig, publisher: MessagePublisher, readiness: Readiness) => {
        const kc = config.executor === 'kubernetes' ? loadKubeConfig(config) : undefined;
        const executor = createExecutor(config, kc);
        const lifecycle = new RunLifecycle(executor, publisher, {
          unschedulableGraceMs: config.unschedulableGraceMs,
          eventsTopic: config.topics.events,
        });
        return new TrainerRuntime(
          config,
          kafkaSettingsFromEnv(TRAINER_CLIENT_ID),
          executor,
          lifecycle,
          publisher,
          readiness,
          kc,
        );
      },
    },
  ],
})
export class TrainerModule implements OnApplicationBootstrap, OnApplicationShutdown {
  constructor(@Inject(TrainerRuntime) private readonly runtime: TrainerRuntime) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.runtime.start();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.runtime.stop();
  }
}
