import 'reflect-metadata';
import { createApp } from './app.factory';
import { ConfigError, loadConfig } from './config/api-config';
import { JsonLogger } from './logging/json-logger';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(JSON.stringify({ level: 'error', msg: `configuration error: ${error.message}` }) + '\n');
      process.exit(2);
    }
    throw error;
  }
  const logger = new JsonLogger(config.logLevel);
  const app = await createApp({ config, logger });
  await app.listen(config.port, config.host);
  logger.info('listening', {
    url: `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${config.port}`,
    auth: config.apiKeys.length > 0 ? 'api-keys' : 'none',
  });
}

main().catch((error: unknown) => {
  process.stderr.write(
    JSON.stringify({ level: 'error', msg: 'startup failed', error: error instanceof Error ? error.message : String(error) }) + '\n',
  );
  process.exit(1);
});
