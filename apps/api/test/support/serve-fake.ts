// A child process for the drain test: the real server wiring (serve + SIGTERM handling as in main.ts) over the
// scripted backend, so the test can send SIGTERM to a real process.
import 'reflect-metadata';
import { serve } from '../../src/app.factory';
import { defaultConfig } from '../../src/config/api-config';
import { JsonLogger } from '@lvr/service-kit';
import { FakeBackend } from './fake-backend';
import { emptyDir } from './app';

async function main(): Promise<void> {
  const backend = new FakeBackend();
  backend.script = { tokens: Array.from({ length: 40 }, (_, i) => `t${i} `), stepMs: 20 };
  const server = await serve({
    config: {
      ...defaultConfig(),
      port: 0,
      modelsDir: emptyDir(),
      models: [{ uri: '/bundles/demo' }],
      logLevel: 'silent',
    },
    backend,
    logger: new JsonLogger('silent'),
  });
  process.stdout.write(`LISTENING ${server.url}\n`);
  process.once('SIGTERM', () => {
    server.drain().then(({ timedOut }) => {
      process.stdout.write(
        `DRAINED timedOut=${timedOut} engineCalls=${backend.calls.length} allDone=${backend.calls.every((c) => c.done)}\n`,
      );
      process.exit(0);
    });
  });
}

void main();
