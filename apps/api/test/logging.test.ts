import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Store, storage } from 'nestjs-pino/storage';
import request from 'supertest';
import { JsonLogger } from '@lvr/service-kit';
import { bootApp } from './support/app';

// The API's log lines through pino: the field layout line-oriented readers rely on, and request ids.
function memoryLogger(level: 'debug' | 'info' = 'debug'): {
  logger: JsonLogger;
  lines: () => Record<string, unknown>[];
} {
  const written: string[] = [];
  const logger = new JsonLogger(level, { write: (chunk: string) => void written.push(chunk) });
  return {
    logger,
    lines: () =>
      written
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

describe('API logging (pino)', () => {
  it('writes level as a word, an ISO time, msg ahead of the fields; levels below the threshold are dropped', () => {
    const { logger, lines } = memoryLogger('info');
    logger.emit('debug', 'hidden');
    logger.info('draining', { signal: 'SIGTERM' });
    const [line] = lines();
    assert.equal(lines().length, 1);
    assert.deepEqual(Object.keys(line), ['level', 'time', 'msg', 'signal']);
    assert.equal(line.level, 'info');
    assert.match(String(line.time), /^\d{4}-\d\d-\d\dT/);
    assert.equal(line.msg, 'draining');
  });

  it("inside a request, a line without its own request_id carries the request's", () => {
    const { logger, lines } = memoryLogger();
    storage.run(new Store(logger.pino.child({ request_id: 'req-bound' })), () => {
      logger.info('inside');
      logger.info('explicit', { request_id: 'req-own' });
    });
    logger.info('outside');
    const [inside, explicit, outside] = lines();
    assert.equal(inside.request_id, 'req-bound');
    assert.equal(explicit.request_id, 'req-own');
    assert.equal(outside.request_id, undefined);
  });

  it('logs each HTTP request with its request id, method, path and status', async () => {
    const { logger, lines } = memoryLogger();
    const app = await bootApp({ logLevel: 'debug' }, undefined, { logger });
    try {
      await request(app.getHttpServer()).get('/health/live').set('X-Request-Id', 'log-test-1').expect(200);
    } finally {
      await app.close();
    }
    const line = lines().find((l) => l.msg === 'request' && l.request_id === 'log-test-1');
    assert.ok(line, 'the request line was written');
    assert.equal(line.method, 'GET');
    assert.equal(line.path, '/health/live');
    assert.equal(line.status, 200);
  });
});
