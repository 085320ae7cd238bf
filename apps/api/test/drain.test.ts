import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parseSse, type SseJson } from './support/sse';
import { DEMO_BUNDLE, startServer } from './support/server-process';

const ROOT = path.resolve(__dirname, '../../..');

function post(url: string, body: unknown): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${url}/v1/chat/completions`,
      { method: 'POST', headers: { 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

describe('graceful drain on SIGTERM', () => {
  it('finishes in-flight streams, refuses new work, then exits 0', async () => {
    const child = spawn(
      process.execPath,
      ['-r', '@swc-node/register', 'apps/api/test/support/serve-fake.ts'],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        const m = /LISTENING (\S+)/.exec(out);
        if (m) resolve(m[1]);
      });
      child.on('exit', (code) => reject(new Error(`server exited early (${code})`)));
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const body = { model: 'demo', messages: [{ role: 'user', content: 'x' }], stream: true };
    const inflight = [post(url, body), post(url, { ...body, stream: false })];
    // Let both start generating, then ask the process to stop.
    await new Promise((r) => setTimeout(r, 200));
    child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 50));
    const late = await post(url, body).then(
      (r) => r.status,
      (e: NodeJS.ErrnoException) => e.code,
    );
    const [streamed, whole] = await Promise.all(inflight);
    const code = await exited;

    assert.equal(streamed.status, 200);
    const events = parseSse(streamed.text);
    assert.equal(events.at(-1), '[DONE]');
    const text = events
      .slice(0, -1)
      .map((e) => (e as SseJson).choices[0]?.delta?.content ?? '')
      .join('');
    assert.equal(
      text,
      Array.from({ length: 40 }, (_, i) => `t${i} `).join(''),
      'the stream ran to completion',
    );
    assert.equal(whole.status, 200);
    assert.equal(JSON.parse(whole.text).choices[0].finish_reason, 'stop');
    assert.ok(
      late === 'ECONNREFUSED' || late === 503 || late === 'ECONNRESET',
      `late request refused (${late})`,
    );
    assert.equal(code, 0);
    assert.match(out, /DRAINED timedOut=false engineCalls=2 allDone=true/);
  });

  it('main.ts on the real engine: SIGTERM lets a running generation finish all its tokens, then exits 0', async () => {
    const server = await startServer({
      LVR_MODELS: `demo=${DEMO_BUNDLE}`,
      LVR_MAX_COMPLETION_TOKENS: '3000',
    });
    const body = {
      model: 'demo',
      max_tokens: 3000,
      ignore_eos: true,
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'Keep going.' }],
    };
    const firstByte = new Promise<void>((resolve, reject) => {
      const req = http.request(
        `${server.url}/v1/chat/completions`,
        { method: 'POST', headers: { 'content-type': 'application/json' } },
        (res) => {
          let text = '';
          res.once('data', () => resolve());
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => done(text));
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify(body));
    });
    let done!: (text: string) => void;
    const finished = new Promise<string>((resolve) => (done = resolve));
    await firstByte;
    server.child.kill('SIGTERM');
    const [text, code] = await Promise.all([finished, server.exited]);
    const events = parseSse(text);
    assert.equal(events.at(-1), '[DONE]');
    const usage = (events.at(-2) as SseJson).usage;
    assert.equal(usage?.completion_tokens, 3000, 'the in-flight generation ran to max_tokens');
    assert.equal(code, 0);
    assert.match(server.output(), /"msg":"draining","signal":"SIGTERM"/);
    assert.match(server.output(), /"msg":"stopped","timed_out":false/);
  });
});
