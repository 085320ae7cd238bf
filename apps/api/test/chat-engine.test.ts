import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import type { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { GenerationEvents, type SequenceFinished } from '../src/chat/generation-events';
import { bootEngineApp, DEMO_ID } from './support/engine-app';
import { pngDataUrl } from './support/images';
import { parseSse, type SseJson } from './support/sse';

// End to end over the real engine (onnxruntime-node) and the committed demo bundle: the whole HTTP surface with
// real generation, images, latent steps, cancellation and overload.

const user = (content: unknown) => ({ role: 'user', content });

function nextFinished(app: NestExpressApplication): Promise<SequenceFinished> {
  return new Promise((resolve) => {
    const off = app.get(GenerationEvents).onFinished((e) => (off(), resolve(e)));
  });
}

describe('chat completions on the real engine', () => {
  let app: NestExpressApplication;
  let url: string;
  const chat = (body: unknown) =>
    request(app.getHttpServer())
      .post('/v1/chat/completions')
      .send(body as object);

  before(async () => {
    ({ app, url } = await bootEngineApp({
      maxCompletionTokens: 4000,
      maxConcurrentSequences: 2,
      maxQueuedRequests: 2,
    }));
  });
  after(async () => app?.close());

  it('answers a multi-turn conversation with several images; image tokens count as prompt tokens', async () => {
    const [a, b] = [await pngDataUrl(64, 48), await pngDataUrl(56, 56)];
    const text = await chat({ model: DEMO_ID, max_tokens: 6, messages: [user('Describe nothing.')] }).expect(
      200,
    );
    const res = await chat({
      model: DEMO_ID,
      max_tokens: 6,
      messages: [
        { role: 'system', content: 'You compare images.' },
        user([
          { type: 'image_url', image_url: { url: a } },
          { type: 'text', text: 'First.' },
        ]),
        { role: 'assistant', content: 'Noted.' },
        user([
          { type: 'image_url', image_url: { url: b } },
          { type: 'image_url', image_url: { url: a } },
          { type: 'text', text: 'Compare.' },
        ]),
      ],
    }).expect(200);
    assert.equal(res.body.model, DEMO_ID);
    const usage = res.body.usage;
    assert.ok(usage.prompt_tokens_details.image_tokens > 0);
    assert.ok(
      usage.prompt_tokens > text.body.usage.prompt_tokens + usage.prompt_tokens_details.image_tokens - 1,
    );
    assert.ok(usage.completion_tokens >= 1 && usage.completion_tokens <= 6);
  });

  it('is deterministic: greedy twice, and the same seed twice, give the same text', async () => {
    const greedy = { model: DEMO_ID, max_tokens: 12, temperature: 0, messages: [user('Say something.')] };
    const [g1, g2] = await Promise.all([chat(greedy).expect(200), chat(greedy).expect(200)]);
    assert.equal(g1.body.choices[0].message.content, g2.body.choices[0].message.content);
    const sampled = { ...greedy, temperature: 1, top_p: 1, top_k: 0, repetition_penalty: 1, seed: 1234 };
    const [s1, s2] = [await chat(sampled).expect(200), await chat(sampled).expect(200)];
    assert.equal(s1.body.choices[0].message.content, s2.body.choices[0].message.content);
  });

  it('n=2 returns two choices and sums completion tokens', async () => {
    const res = await chat({
      model: DEMO_ID,
      n: 2,
      max_tokens: 5,
      ignore_eos: true,
      seed: 5,
      temperature: 1,
      messages: [user('hi')],
    }).expect(200);
    assert.deepEqual(
      res.body.choices.map((c: { index: number }) => c.index),
      [0, 1],
    );
    assert.equal(res.body.usage.completion_tokens, 10);
  });

  it('stop strings end generation early without returning the match', async () => {
    const base = {
      model: DEMO_ID,
      max_tokens: 16,
      temperature: 0,
      ignore_eos: true,
      messages: [user('Go on.')],
    };
    const full = (await chat(base).expect(200)).body.choices[0].message.content as string;
    const chars = [...full];
    assert.ok(chars.length >= 4, `greedy output long enough: ${JSON.stringify(full)}`);
    const stop = chars.slice(2, 4).join('');
    const cut = await chat({ ...base, stop: [stop] }).expect(200);
    assert.equal(cut.body.choices[0].finish_reason, 'stop');
    assert.equal(cut.body.choices[0].message.content, full.slice(0, full.indexOf(stop)));
  });

  it('runs latent steps after <|lvr_start|>, hides the placeholders and reports the count (strategy steps)', async () => {
    const body = {
      model: DEMO_ID,
      max_tokens: 12,
      temperature: 0,
      ignore_eos: true,
      messages: [
        user([
          { type: 'image_url', image_url: { url: await pngDataUrl(56, 56) } },
          { type: 'text', text: 'Look.' },
        ]),
        { role: 'assistant', content: '<|lvr_start|>' },
      ],
      continue_final_message: true,
      add_generation_prompt: false,
    };
    const res = await chat({ ...body, lvr: { strategy: 'steps', steps: 3, return_trace: true } }).expect(200);
    const choice = res.body.choices[0];
    assert.equal(choice.lvr.latent_steps, 3);
    assert.equal(choice.lvr.trace.length, 3);
    assert.deepEqual(
      choice.lvr.trace.map((t: { index: number }) => t.index),
      [0, 1, 2],
    );
    assert.equal(res.body.usage.completion_tokens_details.latent_steps, 3);
    for (const t of choice.lvr.trace)
      assert.equal(t.token_ids.length, 1, 'one placeholder id per latent step');
    const defaults = await chat(body).expect(200);
    assert.equal(defaults.body.choices[0].lvr.latent_steps, 8, "the bundle's default is 8 steps");
    const off = await chat({ ...body, lvr: { strategy: 'none' } }).expect(200);
    assert.equal(off.body.choices[0].lvr.latent_steps, 0);
  });

  it('streams SSE with usage and [DONE]; the text equals the non-streamed answer', async () => {
    const body = { model: DEMO_ID, max_tokens: 8, temperature: 0, messages: [user('Stream please.')] };
    const whole = await chat(body).expect(200);
    const res = await chat({ ...body, stream: true, stream_options: { include_usage: true } })
      .buffer(true)
      .parse((r, cb) => {
        let data = '';
        r.on('data', (c: Buffer) => (data += c.toString()));
        r.on('end', () => cb(null, data));
      })
      .expect(200);
    const events = parseSse(res.body as string);
    assert.equal(events.at(-1), '[DONE]');
    const chunks = events.slice(0, -1) as SseJson[];
    assert.equal(
      chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''),
      whole.body.choices[0].message.content,
    );
    assert.equal(chunks.at(-1)!.usage?.completion_tokens, whole.body.usage.completion_tokens);
  });

  for (const stream of [false, true]) {
    it(`a client disconnect stops the engine (${stream ? 'streaming' : 'non-streaming'})`, async () => {
      const finished = nextFinished(app);
      await new Promise<void>((resolve, reject) => {
        const req = http.request(`${url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
        });
        req.on('error', () => undefined);
        req.end(
          JSON.stringify({
            model: DEMO_ID,
            max_tokens: 4000,
            ignore_eos: true,
            stream,
            messages: [user('Go.')],
          }),
        );
        if (stream) req.on('response', (res) => res.once('data', () => (req.destroy(), resolve())));
        else setTimeout(() => (req.destroy(), resolve()), 150);
        setTimeout(() => reject(new Error('no progress')), 30_000).unref();
      });
      const event = await finished;
      assert.equal(event.finishReason, 'abort');
      assert.equal(event.started, true);
      assert.ok(event.completionTokens < 4000, `the engine stopped after ${event.completionTokens} tokens`);
      const metrics = await request(app.getHttpServer()).get('/metrics').expect(200);
      assert.match(metrics.text, /lvr:num_requests_running 0\n/);
      assert.match(
        metrics.text,
        /lvr:request_success_total\{finished_reason="abort",model_name="lvr-tiny-demo"\} [1-9]/,
      );
    });
  }

  it('429 with Retry-After for a burst beyond running + queued capacity (2 + 2)', async () => {
    const body = { model: DEMO_ID, max_tokens: 60, ignore_eos: true, messages: [user('Busy.')] };
    const results = await Promise.all(Array.from({ length: 7 }, () => chat(body)));
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 200, 200, 200, 429, 429, 429]);
    const refused = results.find((r) => r.status === 429)!;
    assert.equal(refused.headers['retry-after'], '1');
    assert.equal(refused.body.error.code, 'overloaded');
    for (const ok of results.filter((r) => r.status === 200))
      assert.equal(ok.body.usage.completion_tokens, 60);
  });

  it('logit_bias on <|lvr_start|> steers the model into latent blocks; presence/frequency penalties change greedy output', async () => {
    const base = { model: DEMO_ID, temperature: 0, max_tokens: 12, messages: [user('Tell me.')] };
    const plain = await chat({ ...base, lvr: { strategy: 'steps', steps: 2 } }).expect(200);
    assert.equal(plain.body.choices[0].lvr.latent_steps, 0, 'the demo model does not open a block by itself');
    const steered = await chat({
      ...base,
      logit_bias: { '151665': 100 },
      lvr: { strategy: 'steps', steps: 2, return_trace: true },
    }).expect(200);
    assert.ok(steered.body.choices[0].lvr.latent_steps >= 2, JSON.stringify(steered.body.choices[0].lvr));
    const again = await chat({ ...base, max_tokens: 24, ignore_eos: true }).expect(200);
    const penalised = await chat({
      ...base,
      max_tokens: 24,
      ignore_eos: true,
      frequency_penalty: 2,
      presence_penalty: 2,
    }).expect(200);
    assert.notEqual(penalised.body.choices[0].message.content, again.body.choices[0].message.content);
    const outOfVocab = await chat({ ...base, logit_bias: { '999999': 5 } }).expect(400);
    assert.equal(outOfVocab.body.error.param, 'logit_bias');
  });

  it('reports time to first token, inter-token latency, tokens and latent steps in /metrics', async () => {
    const text = (await request(app.getHttpServer()).get('/metrics').expect(200)).text;
    const value = (name: string): number =>
      Number(new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    assert.ok(value('lvr:time_to_first_token_seconds_count{model_name="lvr-tiny-demo"}') > 5);
    assert.ok(value('lvr:inter_token_latency_seconds_count{model_name="lvr-tiny-demo"}') > 5);
    assert.ok(value('lvr:generation_tokens_total{model_name="lvr-tiny-demo"}') > 100);
    assert.ok(value('lvr:latent_steps_total{model_name="lvr-tiny-demo"}') >= 11);
    assert.ok(value('lvr:prompt_tokens_total{model_name="lvr-tiny-demo"}') > 50);
  });
});
