import { ConfigError } from './config/env';

/**
 * Entry-point glue shared by the services: start, or write why not as one JSON line on stderr and exit (2 for a
 * configuration error, 1 for anything else).
 */
export function runService(start: () => Promise<unknown>): void {
  start().catch((error: unknown) => {
    const line =
      error instanceof ConfigError
        ? { level: 'error', msg: `configuration error: ${error.message}` }
        : {
            level: 'error',
            msg: 'startup failed',
            error: error instanceof Error ? error.message : String(error),
          };
    process.stderr.write(`${JSON.stringify(line)}\n`);
    process.exit(error instanceof ConfigError ? 2 : 1);
  });
}
