import 'reflect-metadata';
import { JsonLogger, runService } from '@lvr/service-kit';
import { serve } from './app.factory';
import { loadConfig } from './config/api-config';

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = new JsonLogger(config.logLevel);
  // A stray rejection is a bug to log, not a reason to drop every in-flight request.
  process.on('unhandledRejection', (reason: unknown) => {
    const err = reason instanceof Error ? reason : new Error(String(reason));
    logger.emit('error', 'unhandled rejection', { error: err.message, stack: err.stack });
  });
  const server = await serve({ config, logger });
  logger.info('listening', { url: server.url, auth: config.apiKeys.length > 0 ? 'api-keys' : 'none' });
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      logger.info('draining', { signal });
      server.drain().then(
        ({ timedOut }) => {
          logger.info('stopped', { timed_out: timedOut });
          process.exit(0);
        },
        (error: unknown) => {
          logger.emit('error', 'shutdown failed', { error: (error as Error).message });
          process.exit(1);
        },
      );
    });
  }
}

runService(main);
