import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Controller, Get, Logger, Module } from '@nestjs/common';
import request from 'supertest';
import {
  ConfigError,
  JsonLogger,
  createServiceApp,
  flagVar,
  intVar,
  listVar,
  logLevelVar,
  portVar,
  readApiKeys,
} from '../src';

// What the API, trainer and evaluator share: how settings are read from the environment, how a failed start is
// reported, and the JSON log lines (with the request's id inside a request).

describe('service-kit: settings from the environment', () => {
  it('reads whole numbers with a lower bound, and names the variable when one is wrong', () => {
    assert.equal(intVar({}, 'N', 7), 7);
    assert.equal(intVar({ N: ' 12 ' }, 'N', 7), 12);
    assert.throws(() => intVar({ N: 'twelve' }, 'N', 7), /N must be a non-negative integer, got "twelve"/);
    assert.throws(() => intVar({ N: '-1' }, 'N', 7), ConfigError);
    assert.throws(() => intVar({ N: '0' }, 'N', 7, 1), /N must be an integer >= 1/);
  });

  it('reads ports, lists, flags and the log level', () => {
    assert.equal(portVar({ PORT: '0' }, 'PORT', 8080), 0);
    assert.throws(() => portVar({ PORT: '70000' }, 'PORT', 8080), /PORT must be a port/);
    assert.deepEqual(listVar({ L: 'a, b c,,' }, 'L'), ['a', 'b', 'c']);
    assert.equal(flagVar({ F: 'yes' }, 'F'), true);
    assert.equal(flagVar({ F: 'off' }, 'F'), false);
    assert.equal(logLevelVar({}), 'info');
    assert.equal(logLevelVar({ LVR_LOG_LEVEL: 'debug' }), 'debug');
    assert.throws(() => logLevelVar({ LVR_LOG_LEVEL: 'loud' }), /LVR_LOG_LEVEL must be debug\|info/);
  });

  it('reads API keys from the variable and the file, once each', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lvr-keys-'));
    try {
      const file = path.join(dir, 'keys');
      fs.writeFileSync(file, '# operators\nsk-b\n\nsk-c\n');
      assert.deepEqual(readApiKeys({ LVR_API_KEYS: 'sk-a,sk-b', LVR_API_KEYS_FILE: file }), [
        'sk-a',
        'sk-b',
        'sk-c',
      ]);
      assert.throws(
        () => readApiKeys({ LVR_API_KEYS_FILE: path.join(dir, 'missing') }),
        /LVR_API_KEYS_FILE cannot be read: ENOENT/,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('service-kit: runService', () => {
  const run = (body: string) =>
    spawnSync(
      process.execPath,
      [
        '-r',
        '@swc-node/register',
        '-e',
        `const kit = require('./libs/service-kit/src'); kit.runService(${body});`,
      ],
      { cwd: path.resolve(__dirname, '../../..'), encoding: 'utf8' },
    );

  it('reports a configuration error as one JSON line and exits 2; any other failure exits 1', () => {
    const config = run(`async () => { throw new kit.ConfigError('PORT must be a port'); }`);
    assert.equal(config.status, 2);
    assert.deepEqual(JSON.parse(config.stderr.trim().split('\n').pop()!), {
      level: 'error',
      msg: 'configuration error: PORT must be a port',
    });
    const crash = run(`async () => { throw new Error('broker unreachable'); }`);
    assert.equal(crash.status, 1);
    assert.deepEqual(JSON.parse(crash.stderr.trim().split('\n').pop()!), {
      level: 'error',
      msg: 'startup failed',
      error: 'broker unreachable',
    });
  });
});

@Controller('probe')
class ProbeController {
  private readonly logger = new Logger('Probe');

  @Get()
  probe(): { ok: true } {
    this.logger.log('probed');
    return { ok: true };
  }
}

@Module({ controllers: [ProbeController] })
class ProbeModule {}

describe('service-kit: a service app logs JSON lines', () => {
  it("routes Nest's own logger through the JSON logger; a line written in a request carries its request_id", async () => {
    const written: string[] = [];
    const logger = new JsonLogger('info', { write: (chunk: string) => void written.push(chunk) });
    const app = await createServiceApp(ProbeModule, logger);
    await app.init();
    try {
      await request(app.getHttpServer()).get('/probe').expect(200, { ok: true });
    } finally {
      await app.close();
    }
    const lines = written
      .join('')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const probed = lines.find((line) => line.msg === 'probed');
    assert.ok(probed, `the controller's line was written as JSON: ${written.join('')}`);
    assert.deepEqual(Object.keys(probed).slice(0, 2), ['level', 'time']);
    assert.equal(probed.level, 'info');
    assert.equal(probed.context, 'Probe');
    assert.ok(probed.request_id !== undefined, 'the request id is bound to lines inside the request');
    assert.ok(
      lines.some((line) => line.context === 'NestApplication'),
      "Nest's own lines are JSON too",
    );
  });
});
