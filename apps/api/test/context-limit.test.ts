import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { loadConfig } from '../src/config/api-config';
import { bootEngineApp, DEMO_ID } from './support/engine-app';
import { pngDataUrl } from './support/images';

// The context limit over the real engine and the demo bundle: counted before any compute, answered like vLLM.

const user = (content: unknown) => ({ role: 'user', content });

describe('context length (max_model_len) on the chat API', () => {
  let app: NestExpressApplication;
  let small: NestExpressApplication;
  let image: string;
  const chat = (a: NestExpressApplication, body: unknown) =>
    request(a.getHttpServer())
      .post('/v1/chat/completions')
      .send(body as object);

  before(async () => {
    image = await pngDataUrl(112, 84);
    ({ app } = await bootEngineApp({ maxCompletionTokens: 40000 }));
    ({ app: small } = await bootEngineApp({ maxModelLen: 120 }));
  });
  after(async () => {
    await app?.close();
    await small?.close();
  });

  it('an 80,000-token prompt is refused with 400 in vLLM wording before any compute (not a 500)', async () => {
    const res = await chat(app, {
      model: DEMO_ID,
      max_tokens: 16,
      messages: [user('hello '.repeat(80_000))],
    }).expect(400);
    const e = res.body.error;
    assert.match(
      e.message,
      /^This model's maximum context length is 32768 tokens\. However, you requested (\d+) tokens \((\d+) in the messages, 16 in the completion\)\. Please reduce the length of the messages or completion\.$/,
    );
    const [, total, prompt] = /requested (\d+) tokens \((\d+)/.exec(e.message)!.map(Number);
    assert.ok(prompt > 80_000 && total === prompt + 16, e.message);
    assert.equal(e.param, 'messages');
    assert.equal(e.code, 'context_length_exceeded');
    assert.equal(e.type, 'invalid_request_error');
  });

  it('image tokens count; prompt + max_tokens = the limit passes, one more is refused', async () => {
    const messages = [
      user([
        { type: 'image_url', image_url: { url: image } },
        { type: 'text', text: 'What is it?' },
      ]),
    ];
    const ok = await chat(app, { model: DEMO_ID, max_tokens: 1, messages }).expect(200);
    const prompt = ok.body.usage.prompt_tokens as number;
    assert.ok(ok.body.usage.prompt_tokens_details.image_tokens > 0);
    const room = 32768 - prompt;
    const over = await chat(app, { model: DEMO_ID, max_completion_tokens: room + 1, messages }).expect(400);
    assert.match(
      over.body.error.message,
      new RegExp(`you requested 32769 tokens \\(${prompt} in the messages, ${room + 1} in the completion\\)`),
    );
    assert.equal(over.body.error.param, 'messages');
    // The limit itself is fine (the request is then cut short by max_tokens, not refused).
    const exact = await chat(small, {
      model: DEMO_ID,
      max_tokens: 120 - prompt,
      ignore_eos: true,
      messages,
    }).expect(200);
    assert.equal(exact.body.usage.prompt_tokens, prompt);
    assert.equal(exact.body.usage.completion_tokens, 120 - prompt);
  });

  it('LVR_MAX_MODEL_LEN: /v1/models reports it; without max_tokens the completion gets the room left', async () => {
    assert.equal(loadConfig({ LVR_MAX_MODEL_LEN: '2048' }).maxModelLen, 2048);
    assert.equal(loadConfig({}).maxModelLen, undefined);
    const models = await request(small.getHttpServer()).get('/v1/models').expect(200);
    assert.equal(models.body.data[0].max_model_len, 120);
    const messages = [user('Count to a thousand, slowly.')];
    const one = await chat(small, { model: DEMO_ID, max_tokens: 1, messages }).expect(200);
    const prompt = one.body.usage.prompt_tokens as number;
    const res = await chat(small, { model: DEMO_ID, ignore_eos: true, messages }).expect(200);
    assert.equal(res.body.choices[0].finish_reason, 'length');
    assert.equal(res.body.usage.completion_tokens, 120 - prompt);
    const full = await chat(small, { model: DEMO_ID, messages: [user('word '.repeat(200))] }).expect(400);
    assert.match(
      full.body.error.message,
      /^This model's maximum context length is 120 tokens\. However, you requested \d+ tokens in the messages/,
    );
  });
});
