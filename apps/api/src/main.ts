import 'reflect-metadata';
import { serve } from './app.factory';
import { ConfigError, loadConfig, type ApiConfig } from './config/api-config';
import { JsonLogger } from './logging/json-logger';

async function main(): Promise<void> {
  let config: ApiConfig;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(
        JSON.stringify({ level: 'error', msg: `configuration error: ${error.message}` }) + '\n',
      );
      process.exit(2);
    }
    throw error;
  }
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

main().catch((error: unknown) => {
  process.stderr.write(
    JSON.stringify({
      level: 'error',
      msg: 'startup failed',
      error: error instanceof Error ? error.message : String(error),
    }) + '\n',
  );
  process.exit(1);
});
