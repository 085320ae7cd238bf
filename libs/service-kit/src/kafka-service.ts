import { INestApplication, LogLevel, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { MicroserviceOptions, Transport } from '@nestjs/microservices';
import { KafkaSettings, ensureTopics } from '@lvr/messaging';
import { Readiness } from './readiness';

export interface KafkaServiceOptions {
  module: Type<unknown>;
  kafka: KafkaSettings;
  groupId: string;
  /** Topics the handlers consume; created first when missing, since subscribing to one still being created fails. */
  topics?: string[];
  host: string;
  port: number;
  logLevels?: LogLevel[];
}

/**
 * A Kafka consumer service (hybrid Nest app) with an HTTP server for health probes. Readiness turns true only once
 * the consumer joined its group, so Kubernetes routes nothing to a service that cannot take work yet.
 */
export async function startKafkaService(options: KafkaServiceOptions): Promise<INestApplication> {
  const app = await NestFactory.create(options.module, {
    logger: options.logLevels ?? ['error', 'warn', 'log'],
  });
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
  await app.listen(options.port, options.host);
  if (options.topics?.length) await ensureTopics(options.kafka, options.topics);
  await app.startAllMicroservices();
  readiness.markReady('kafka');
  return app;
}

export function portFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (!raw) return fallback;
  const port = Number.parseInt(raw, 10);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`${name}=${raw} is not a port`);
  return port;
}
