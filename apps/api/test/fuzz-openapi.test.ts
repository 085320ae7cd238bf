import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureSchemathesis } from './support/schemathesis';
import { DEMO_BUNDLE, startServer, type ServerProcess } from './support/server-process';

// Property-based fuzzing of the served OpenAPI document with schemathesis: valid and invalid requests for every
// operation against the real server (real engine, demo bundle). No response may be a 5xx and the process must
// survive. Remote image fetching is off so fuzzed URLs never leave the machine.

describe('OpenAPI fuzzing (schemathesis)', () => {
  let server: ServerProcess;
  let bin: string;
  before(async () => {
    bin = ensureSchemathesis();
    server = await startServer({
      LVR_MODELS: `lvr-tiny-demo=${DEMO_BUNDLE}`,
      LVR_MAX_COMPLETION_TOKENS: '4',
      LVR_MAX_N: '2',
      LVR_IMAGE_REMOTE_FETCH: 'off',
    });
  });
  after(async () => server?.stop());

  it('finds no server error on any operation', async () => {
    const report = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'lvr-fuzz-')), 'junit.xml');
    const result = await new Promise<{ code: number; out: string }>((resolve) => {
      execFile(
        bin,
        [
          'run',
          `${server.url}/docs`,
          '--url',
          server.url,
          '--checks',
          'not_a_server_error',
          '--phases',
          'examples,coverage,fuzzing',
          '--max-examples',
          '40',
          '--seed',
          '20261126',
          '--generation-database',
          'none',
          '--workers',
          '2',
          '--request-timeout',
          '60',
          '--suppress-health-check',
          'all',
          '--no-color',
          '--report',
          'junit',
          '--report-junit-path',
          report,
        ],
        { timeout: 240_000, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, SCHEMATHESIS_HOOKS: '' } },
        (error, stdout, stderr) =>
          resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
      );
    });
    assert.equal(result.code, 0, `schemathesis reported failures:\n${result.out.slice(-6000)}`);
    const junit = fs.readFileSync(report, 'utf8');
    const tests = Number(/tests="(\d+)"/.exec(junit)?.[1] ?? 0);
    assert.ok(tests >= 6, `every operation was exercised (${tests} test cases in the report)`);
    assert.doesNotMatch(server.output(), /"level":"error"/, 'no unhandled errors were logged');
    const live = await fetch(`${server.url}/health/live`);
    assert.equal(live.status, 200, 'the process survived');
  });
});
