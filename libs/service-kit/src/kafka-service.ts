import { INestApplication, Type } from '@nestjs/common';
import { MicroserviceOptions, Transport } from '@nestjs/microservices';
import { KafkaSettings, ensureTopics } from '@lvr/messaging';
import type { JsonLogger } from './logging/json-logger';
import { Readiness } from './readiness';
import { createServiceApp } from './service-app';

export interface KafkaServiceOptions {
  module: Type<unknown>;
  kafka: KafkaSettings;
  groupId: string;
  /** Topics the handlers consume; created first when missing, since subscribing to one still being created fails. */
  topics?: string[];
  host: string;
  port: number;
  logger: JsonLogger;
  /** Last set-up before the HTTP server starts, e.g. routes outside the controllers (`serveOpenApi`). */
  beforeListen?: (app: INestApplication) => void;
}

/**
 * A Kafka consumer service (hybrid Nest app) with an HTTP server for health probes. Readiness turns true only once
 * the consumer joined its group, so Kubernetes routes nothing to a service that cannot take work yet.
 */
export async function startKafkaService(options: KafkaServiceOptions): Promise<INestApplication> {
  const app = await createServiceApp(options.module, options.logger);
  app.enableShutdownHooks();
  const readiness = app.get(Readiness);
  readiness.waitFor('kafka');
  app.connectMicroservice<MicroserviceOptions>(
    {
      transport: Transport.KAFKA,
      options: {
        postfixId: '',
        // Handlers validate the raw bytes themselves, so invalid JSON can be dead-lettered whole.
        parser: { keepBinary: true },
        client: { clientId: options.kafka.clientId, brokers: options.kafka.brokers, retry: { retries: 5 } },
        consumer: { groupId: options.groupId, allowAutoTopicCreation: true },
        subscribe: { fromBeginning: true },
        run: { autoCommit: true },
      },
    },
    { inheritAppConfig: true },
  );
  options.beforeListen?.(app);
  await app.listen(options.port, options.host);
  if (options.topics?.length) await ensureTopics(options.kafka, options.topics);
  await app.startAllMicroservices();
  readiness.markReady('kafka');
  return app;
}
