import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { Module } from '@nestjs/common';
import { BenchmarkRegistry } from '@lvr/data';
import { HealthModule } from '@lvr/service-kit';
import { MessagePublisher, kafkaSettingsFromEnv } from '@lvr/messaging';
import { ObjectStore, objectStoreConfigFromEnv } from '@lvr/storage';
import { EvaluatorConfig, evaluatorConfigFromEnv } from './config';
import { EvaluationRequestsController } from './evaluation-requests.controller';
import { EvaluationService } from './evaluation.service';
import { EvaluationRunner } from './execution/runner';
import { ModelClient } from './execution/model-client';
import { EvaluationStore } from './results/evaluation-store';
import { ModelsPublishedController } from './triggers/models-published.controller';
import { ScheduleTrigger } from './triggers/scheduler';
import { EvaluationsController } from './http/evaluations.controller';
import { EVALUATOR_CONFIG } from './tokens';

export const EVALUATOR_CLIENT_ID = 'lvr-evaluator';

const WORKER_ID = Symbol('WorkerId');

/** Wires the evaluator from the environment: API client, MinIO store, Kafka publisher, triggers, read API. */
@Module({
  imports: [HealthModule],
  controllers: [EvaluationRequestsController, ModelsPublishedController, EvaluationsController],
  providers: [
    { provide: EVALUATOR_CONFIG, useFactory: () => evaluatorConfigFromEnv() },
    { provide: WORKER_ID, useFactory: () => `${os.hostname()}-${process.pid}-${randomUUID().slice(0, 8)}` },
    {
      provide: MessagePublisher,
      useFactory: () => new MessagePublisher(kafkaSettingsFromEnv(EVALUATOR_CLIENT_ID)),
    },
    { provide: ObjectStore, useFactory: () => new ObjectStore(objectStoreConfigFromEnv()) },
    {
      provide: EvaluationStore,
      inject: [EVALUATOR_CONFIG, ObjectStore],
      useFactory: async (config: EvaluatorConfig, objects: ObjectStore) => {
        const store = new EvaluationStore(objects, config.resultsBucket);
        await store.init();
        return store;
      },
    },
    {
      provide: EvaluationService,
      inject: [EVALUATOR_CONFIG, WORKER_ID, EvaluationStore, MessagePublisher, ObjectStore],
      useFactory: (
        config: EvaluatorConfig,
        workerId: string,
        store: EvaluationStore,
        publisher: MessagePublisher,
        objects: ObjectStore,
      ) => {
        const runner = config.apiBaseUrl
          ? new EvaluationRunner(
              { concurrency: config.concurrency, addressVersions: config.addressVersions, workerId },
              new ModelClient({
                baseURL: config.apiBaseUrl,
                apiKey: config.apiKey,
                timeoutMs: config.requestTimeoutMs,
                retry: {
                  maxRetries: config.maxRetries,
                  baseMs: config.backoffBaseMs,
                  maxMs: config.backoffMaxMs,
                },
              }),
              store,
              BenchmarkRegistry.fromEnv(),
              objects,
            )
          : undefined;
        return new EvaluationService(config, store, runner, publisher, workerId);
      },
    },
    {
      provide: ScheduleTrigger,
      inject: [EVALUATOR_CONFIG, EvaluationStore, MessagePublisher],
      useFactory: (config: EvaluatorConfig, store: EvaluationStore, publisher: MessagePublisher) =>
        new ScheduleTrigger(config, store, publisher),
    },
  ],
})
export class EvaluatorModule {}
