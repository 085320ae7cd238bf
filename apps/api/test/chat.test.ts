import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { RequestError } from '@lvr/engine';
import request from 'supertest';
import { GenerationEvents, type SequenceFinished } from '../src/chat/generation-events';
import { bootApp } from './support/app';
import { FakeBackend } from './support/fake-backend';
import { pngDataUrl } from './support/images';
import { parseSse, type SseJson } from './support/sse';
import { canonicalSeries, seriesValues } from './support/metrics';

// Pure HTTP-logic tests over a scripted backend (validation, shapes, SSE framing, errors, auth, overload).
// The same surface runs against the real engine in chat-engine.test.ts.

const LATENT_SCRIPT = {
  tokens: [
    '<|lvr_start|>',
    { text: 'x', latent: true as const },
    { text: 'y', latent: true as const },
    '<|lvr_end|>',
    'A red',
    ' square',
  ],
};

describe('POST /v1/chat/completions (scripted backend)', () => {
  let app: NestExpressApplication;
  let backend: FakeBackend;
  const server = () => app.getHttpServer();
  const chat = (body: unknown) =>
    request(server())
      .post('/v1/chat/completions')
      .send(body as object);

  before(async () => {
    backend = new FakeBackend();
    app = await bootApp(
      { models: [{ uri: '/bundles/demo' }], maxBodyBytes: 200_000, maxCompletionTokens: 64 },
      backend,
    );
  });
  after(async () => app.close());
  beforeEach(() => {
    backend.script = { ...LATENT_SCRIPT };
    backend.calls.length = 0;
  });

  it('answers in the OpenAI shape with latent placeholders removed and latent steps reported', async () => {
    const res = await chat({ model: 'demo', messages: [{ role: 'user', content: 'What is it?' }] }).expect(
      200,
    );
    assert.equal(res.body.object, 'chat.completion');
    assert.match(res.body.id, /^chatcmpl-/);
    assert.equal(res.body.model, 'demo');
    assert.equal(res.body.choices.length, 1);
    const choice = res.body.choices[0];
    assert.deepEqual(choice.message, {
      role: 'assistant',
      content: '<|lvr_start|><|lvr_end|>A red square',
      refusal: null,
    });
    assert.equal(choice.finish_reason, 'stop');
    assert.equal(choice.logprobs, null);
    assert.deepEqual(choice.lvr, { latent_steps: 2 });
    assert.deepEqual(res.body.usage, {
      prompt_tokens: 7,
      completion_tokens: 6,
      total_tokens: 13,
      prompt_tokens_details: { cached_tokens: 0, image_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 2, latent_steps: 2 },
    });
  });

  it('returns the latent trace on request', async () => {
    const res = await chat({
      model: 'demo',
      messages: [{ role: 'user', content: 'hi' }],
      lvr: { return_trace: true },
    }).expect(200);
    assert.deepEqual(res.body.choices[0].lvr.trace, [
      { index: 1, token_ids: [101], text: 'x' },
      { index: 2, token_ids: [102], text: 'y' },
    ]);
  });

  it('maps OpenAI, vLLM and LVR fields onto the engine request', async () => {
    await chat({
      model: 'demo',
      messages: [
        { role: 'developer', content: 'Be brief.' },
        { role: 'user', content: [{ type: 'text', text: 'Hi' }] },
        { role: 'assistant', content: 'Hello' },
        { role: 'user', content: 'Again' },
      ],
      temperature: 0.5,
      top_p: 0.9,
      top_k: -1,
      min_p: 0.1,
      repetition_penalty: 1.05,
      seed: 42,
      stop: 'END',
      stop_token_ids: [5, 6],
      max_completion_tokens: 10,
      ignore_eos: true,
      lvr: { strategy: 'steps', steps: 8 },
    }).expect(200);
    const req = backend.calls[0].request;
    assert.deepEqual(req.sampling, {
      temperature: 0.5,
      topP: 0.9,
      topK: 0,
      minP: 0.1,
      repetitionPenalty: 1.05,
      seed: 42,
      stop: ['END'],
      stopTokenIds: [5, 6],
      maxTokens: 10,
      ignoreEos: true,
    });
    assert.deepEqual(req.lvr, { strategy: 'steps', steps: 8 });
    assert.deepEqual(
      req.messages.map((m) => m.role),
      ['system', 'user', 'assistant', 'user'],
    );
    assert.deepEqual(req.messages[1].content, [{ type: 'text', text: 'Hi' }]);
  });

  it('continue_final_message (with add_generation_prompt: false, as in vLLM) turns the last assistant message into the answer prefix', async () => {
    const messages = [
      { role: 'user', content: 'Look closely.' },
      { role: 'assistant', content: '<|lvr_start|>' },
    ];
    await chat({
      model: 'demo',
      messages,
      continue_final_message: true,
      add_generation_prompt: false,
    }).expect(200);
    const req = backend.calls[0].request;
    assert.equal(req.assistantPrefix, '<|lvr_start|>');
    assert.equal(req.addGenerationPrompt, true, 'rendered as the generation prompt + the continued text');
    assert.equal(req.messages.length, 1);
    for (const both of [{}, { add_generation_prompt: true }]) {
      const res = await chat({ model: 'demo', messages, continue_final_message: true, ...both }).expect(400);
      assert.equal(res.body.error.param, 'add_generation_prompt');
      assert.match(
        res.body.error.message,
        /Cannot set both continue_final_message and add_generation_prompt/,
      );
    }
    assert.equal(backend.calls.length, 1);
    const bad = await chat({
      model: 'demo',
      messages: [{ role: 'user', content: 'x' }],
      continue_final_message: true,
      add_generation_prompt: false,
    }).expect(400);
    assert.equal(bad.body.error.param, 'messages[0]');
  });

  it('fields the server does not honour are refused (400 unsupported_parameter naming the field), never ignored', async () => {
    const base = { model: 'demo', messages: [{ role: 'user', content: 'hi' }] };
    const cases: Array<[string, unknown]> = [
      ['tools', [{ type: 'function', function: { name: 'f', parameters: {} } }]],
      ['tool_choice', 'auto'],
      ['parallel_tool_calls', false],
      ['functions', [{ name: 'f' }]],
      ['function_call', 'auto'],
      ['audio', { voice: 'alloy', format: 'mp3' }],
      ['modalities', ['text']],
      ['prediction', { type: 'content', content: 'x' }],
      ['web_search_options', {}],
      ['guided_json', { type: 'object' }],
      ['some_new_field', 1],
    ];
    for (const [field, value] of cases) {
      const res = await chat({ ...base, [field]: value }).expect(400);
      assert.equal(res.body.error.param, field, field);
      assert.equal(res.body.error.code, 'unsupported_parameter', field);
      assert.match(res.body.error.message, new RegExp(`^${field} is not supported`));
    }
    for (const type of ['json_object', 'json_schema']) {
      const res = await chat({ ...base, response_format: { type } }).expect(400);
      assert.equal(res.body.error.param, 'response_format');
      assert.equal(res.body.error.code, 'unsupported_parameter');
    }
    assert.equal(backend.calls.length, 0, 'nothing refused reached the engine');
    await chat({ ...base, response_format: { type: 'text' }, user: 'u-1' }).expect(200);
  });

  it('logit_bias, presence_penalty and frequency_penalty reach the engine; bad values get 400 with param', async () => {
    await chat({
      model: 'demo',
      messages: [{ role: 'user', content: 'hi' }],
      logit_bias: { '151665': 100, '42': -100 },
      presence_penalty: 0.5,
      frequency_penalty: -0.25,
    }).expect(200);
    const s = backend.calls[0].request.sampling!;
    assert.deepEqual(s.logitBias, { 151665: 100, 42: -100 });
    assert.equal(s.presencePenalty, 0.5);
    assert.equal(s.frequencyPenalty, -0.25);
    for (const [field, value] of [
      ['logit_bias', { abc: 1 }],
      ['logit_bias', { '5': 101 }],
      ['logit_bias', [1, 2]],
      ['presence_penalty', 2.5],
      ['frequency_penalty', -3],
    ] as Array<[string, unknown]>) {
      const res = await chat({ model: 'demo', messages: [{ role: 'user', content: 'hi' }], [field]: value });
      assert.equal(res.status, 400, `${field}=${JSON.stringify(value)}`);
      assert.equal(res.body.error.param, field);
    }
  });

  it('runs n choices with distinct seeds and sums their usage', async () => {
    const res = await chat({
      model: 'demo',
      messages: [{ role: 'user', content: 'hi' }],
      n: 3,
      seed: 7,
    }).expect(200);
    assert.deepEqual(
      res.body.choices.map((c: { index: number }) => c.index),
      [0, 1, 2],
    );
    assert.deepEqual(backend.calls.map((c) => c.request.sampling?.seed).sort(), [7, 8, 9]);
    assert.equal(res.body.usage.completion_tokens, 18);
    assert.equal(res.body.usage.prompt_tokens, 7);
  });

  it('honours max_tokens with finish_reason length', async () => {
    const res = await chat({
      model: 'demo',
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 2,
    }).expect(200);
    assert.equal(res.body.choices[0].finish_reason, 'length');
    assert.equal(res.body.usage.completion_tokens, 2);
  });

  it('returns logprobs in the OpenAI shape', async () => {
    backend.script = { tokens: ['A', 'B'] };
    const res = await chat({
      model: 'demo',
      messages: [{ role: 'user', content: 'hi' }],
      logprobs: true,
      top_logprobs: 2,
    }).expect(200);
    const content = res.body.choices[0].logprobs.content;
    assert.equal(content.length, 2);
    assert.deepEqual(content[0], {
      token: 'A',
      logprob: -0.5,
      bytes: [65],
      top_logprobs: [
        { token: 'alt0', logprob: -1, bytes: null },
        { token: 'alt1', logprob: -2, bytes: null },
      ],
    });
  });

  it('accepts base64 data-URL images and passes decoded bytes to the engine', async () => {
    const url = await pngDataUrl(28, 28);
    await chat({
      model: 'demo',
      messages: [
        {
          role: 'user',
          content: [
            { type: 'image_url', image_url: { url } },
            { type: 'image_url', image_url: { url, detail: 'high' } },
            { type: 'text', text: 'Compare' },
          ],
        },
      ],
    }).expect(200);
    const content = backend.calls[0].request.messages[0].content as Array<{
      type: string;
      image?: Uint8Array;
    }>;
    assert.deepEqual(
      content.map((p) => p.type),
      ['image', 'image', 'text'],
    );
    assert.deepEqual([...content[0].image!.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
  });

  it('streams server-sent events: role, content, finish, usage, [DONE]', async () => {
    const res = await chat({
      model: 'demo',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
      stream_options: { include_usage: true },
    })
      .buffer(true)
      .parse((r, cb) => {
        let data = '';
        r.on('data', (c: Buffer) => (data += c.toString()));
        r.on('end', () => cb(null, data));
      })
      .expect(200);
    assert.match(res.headers['content-type'], /^text\/event-stream/);
    const events = parseSse(res.body as string);
    assert.equal(events.at(-1), '[DONE]');
    const chunks = events.slice(0, -1) as SseJson[];
    assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0].id));
    assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '' });
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
    assert.equal(text, '<|lvr_start|><|lvr_end|>A red square');
    const finals = chunks.filter((c) => c.choices[0]?.finish_reason);
    assert.equal(finals.length, 1);
    assert.equal(finals[0].choices[0].finish_reason, 'stop');
    assert.equal(finals[0].choices[0].lvr?.latent_steps, 2);
    const usage = chunks.at(-1)!;
    assert.deepEqual(usage.choices, []);
    assert.equal(usage.usage?.completion_tokens, 6);
    assert.equal(usage.usage?.completion_tokens_details.latent_steps, 2);
  });

  for (const [name, body, param] of [
    ['missing model', { messages: [{ role: 'user', content: 'x' }] }, 'model'],
    ['empty messages', { model: 'demo', messages: [] }, 'messages'],
    ['bad role', { model: 'demo', messages: [{ role: 'robot', content: 'x' }] }, 'messages[0].role'],
    [
      'temperature out of range',
      { model: 'demo', messages: [{ role: 'user', content: 'x' }], temperature: 3 },
      'temperature',
    ],
    ['non-integer n', { model: 'demo', messages: [{ role: 'user', content: 'x' }], n: 1.5 }, 'n'],
    [
      'unknown part type',
      { model: 'demo', messages: [{ role: 'user', content: [{ type: 'audio' }] }] },
      'messages[0].content[0].type',
    ],
    [
      'image part without url',
      { model: 'demo', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: {} }] }] },
      'messages[0].content[0].image_url.url',
    ],
    [
      'stream_options without stream',
      { model: 'demo', messages: [{ role: 'user', content: 'x' }], stream_options: { include_usage: true } },
      'stream_options',
    ],
    [
      'top_logprobs without logprobs',
      { model: 'demo', messages: [{ role: 'user', content: 'x' }], top_logprobs: 2 },
      'top_logprobs',
    ],
    [
      'max_tokens over the server cap',
      { model: 'demo', messages: [{ role: 'user', content: 'x' }], max_tokens: 65 },
      'max_tokens',
    ],
    [
      'bad lvr strategy',
      { model: 'demo', messages: [{ role: 'user', content: 'x' }], lvr: { strategy: 'magic' } },
      'lvr.strategy',
    ],
    [
      'lvr.steps below the engine minimum',
      { model: 'demo', messages: [{ role: 'user', content: 'x' }], lvr: { steps: 0 } },
      'lvr.steps',
    ],
    [
      'stop list too long',
      { model: 'demo', messages: [{ role: 'user', content: 'x' }], stop: Array(17).fill('a') },
      'stop',
    ],
    [
      'prototype pollution key',
      JSON.parse('{"model":"demo","messages":[{"role":"user","content":"x"}],"__proto__":{"admin":true}}'),
      '__proto__',
    ],
    ['not an object', [1, 2], null],
    [
      'image in a system message',
      {
        model: 'demo',
        messages: [
          {
            role: 'system',
            content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,AA==' } }],
          },
        ],
      },
      'messages[0].content[0].image_url',
    ],
    [
      'non-image data URL',
      {
        model: 'demo',
        messages: [
          {
            role: 'user',
            content: [{ type: 'image_url', image_url: { url: 'data:text/plain;base64,aGVsbG8=' } }],
          },
        ],
      },
      'messages[0].content[0].image_url.url',
    ],
    [
      'undecodable image bytes',
      {
        model: 'demo',
        messages: [
          {
            role: 'user',
            content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,aGVsbG8=' } }],
          },
        ],
      },
      'messages[0].content[0].image_url.url',
    ],
    [
      'file:// without an allow-listed directory',
      {
        model: 'demo',
        messages: [
          { role: 'user', content: [{ type: 'image_url', image_url: { url: 'file:///etc/passwd' } }] },
        ],
      },
      'messages[0].content[0].image_url.url',
    ],
  ] as Array<[string, unknown, string | null]>) {
    it(`400 with param for ${name}`, async () => {
      const res = await chat(body).expect(400);
      assert.equal(res.body.error.type, 'invalid_request_error');
      assert.equal(res.body.error.param, param);
      assert.equal(typeof res.body.error.message, 'string');
      assert.equal(backend.calls.length, 0, 'nothing was generated');
    });
  }

  it('400 for too many images, before any is fetched', async () => {
    const part = { type: 'image_url', image_url: { url: 'http://example.invalid/a.png' } };
    const res = await chat({
      model: 'demo',
      messages: [{ role: 'user', content: Array(9).fill(part) }],
    }).expect(400);
    assert.equal(res.body.error.code, 'too_many_images');
  });

  it('400 for malformed JSON, 413 for an oversized body', async () => {
    const bad = await request(server())
      .post('/v1/chat/completions')
      .set('Content-Type', 'application/json')
      .send('{"model":')
      .expect(400);
    assert.equal(bad.body.error.code, 'invalid_json');
    const big = await chat({
      model: 'demo',
      messages: [{ role: 'user', content: 'x'.repeat(300_000) }],
    }).expect(413);
    assert.equal(big.body.error.code, 'request_too_large');
    assert.equal(big.body.error.type, 'invalid_request_error');
  });

  it('404 model_not_found for an unknown model', async () => {
    const res = await chat({ model: 'ghost', messages: [{ role: 'user', content: 'x' }] }).expect(404);
    assert.deepEqual(res.body.error, {
      message: "The model 'ghost' does not exist",
      type: 'invalid_request_error',
      param: 'model',
      code: 'model_not_found',
    });
  });

  it('engine RequestError becomes 400 with its param', async () => {
    backend.script = { fail: new RequestError('prompt is longer than the context', 'messages') };
    const res = await chat({ model: 'demo', messages: [{ role: 'user', content: 'x' }] }).expect(400);
    assert.equal(res.body.error.param, 'messages');
    assert.match(res.body.error.message, /longer than the context/);
  });

  it('unexpected engine failure is a 500 naming the request id, without a stack trace', async () => {
    backend.script = { fail: new Error('secret internal detail at /srv/engine.ts:12') };
    const res = await chat({ model: 'demo', messages: [{ role: 'user', content: 'x' }] })
      .set('X-Request-Id', 'abc-123')
      .expect(500);
    assert.equal(res.body.error.type, 'server_error');
    assert.equal(res.body.error.message, 'Internal server error (request id abc-123)');
    assert.doesNotMatch(JSON.stringify(res.body), /secret|engine\.ts|at /);
    assert.equal(res.headers['x-request-id'], 'abc-123');
  });

  it('a failure after the stream started becomes an error event followed by [DONE]', async () => {
    backend.script = { tokens: ['a'] };
    const original = backend.script;
    // The first delta succeeds, then the engine throws.
    backend.script = original;
    const events = await streamWithFailure(app, backend);
    assert.ok(events.some((e) => e !== '[DONE]' && e.error?.type === 'server_error'));
    assert.equal(events.at(-1), '[DONE]');
  });

  it('exposes Prometheus metrics for the requests served', async () => {
    await chat({ model: 'demo', messages: [{ role: 'user', content: 'x' }] }).expect(200);
    const res = await request(server()).get('/metrics').expect(200);
    assert.match(res.headers['content-type'], /^text\/plain/);
    for (const name of [
      'lvr:time_to_first_token_seconds_bucket{model_name="demo",le="0.001"}',
      'lvr:inter_token_latency_seconds_count{model_name="demo"}',
      'lvr:e2e_request_latency_seconds_count{model_name="demo"}',
      'lvr:num_requests_running 0',
      'lvr:num_requests_waiting 0',
      'lvr:prompt_tokens_total{model_name="demo"}',
      'lvr:generation_tokens_total{model_name="demo"}',
      'lvr:latent_steps_total{model_name="demo"}',
      // prom-client's process, heap and event-loop series
      'process_resident_memory_bytes',
      'nodejs_heap_size_used_bytes',
      'nodejs_eventloop_lag_seconds',
    ]) {
      const [series, value] = name.split(' ');
      const found = seriesValues(res.text).get(canonicalSeries(series));
      assert.ok(
        found !== undefined && (value === undefined || found === Number(value)),
        `metrics contain ${name}`,
      );
    }
  });

  it('serves the OpenAPI document at /docs', async () => {
    const res = await request(server()).get('/docs').expect(200);
    assert.equal(res.body.openapi, '3.1.0');
    assert.ok(res.body.paths['/v1/chat/completions'].post);
    assert.equal(res.body.components.schemas.ChatCompletionRequest.properties.max_tokens.maximum, 64);
  });

  it('documents the response shapes: completion, stream chunk, models and errors', async () => {
    const { body: doc } = await request(server()).get('/docs').expect(200);
    const schemas = doc.components.schemas;
    const ok = doc.paths['/v1/chat/completions'].post.responses['200'].content;
    assert.equal(ok['application/json'].schema.$ref, '#/components/schemas/ChatCompletionOut');
    assert.ok(ok['text/event-stream']);
    const completion = schemas.ChatCompletionOut;
    for (const field of ['id', 'object', 'created', 'model', 'choices', 'usage'])
      assert.ok(completion.required.includes(field), `chat.completion requires ${field}`);
    assert.deepEqual(completion.properties.object.enum, ['chat.completion']);
    const choice = schemas.ChatCompletionChoiceOut;
    assert.deepEqual(choice.properties.finish_reason.enum, ['stop', 'length', 'abort']);
    assert.equal(choice.properties.lvr.$ref, '#/components/schemas/ChoiceLvrOut');
    assert.ok(schemas.ChoiceLvrOut.required.includes('latent_steps'));
    assert.ok(schemas.CompletionTokensDetailsOut.required.includes('latent_steps'));
    assert.deepEqual(schemas.ChatCompletionChunkOut.properties.object.enum, ['chat.completion.chunk']);
    const models = doc.paths['/v1/models'].get.responses['200'].content['application/json'].schema;
    assert.equal(models.$ref, '#/components/schemas/ModelList');
    for (const field of ['max_model_len', 'lvr', 'version', 'versions'])
      assert.ok(schemas.ModelCard.required.includes(field), `the model card requires ${field}`);
    const badRequest = doc.paths['/v1/chat/completions'].post.responses['400'].content['application/json'];
    assert.equal(badRequest.schema.$ref, '#/components/schemas/ErrorResponse');
    assert.deepEqual(Object.keys(schemas.ErrorBody.properties).sort(), ['code', 'message', 'param', 'type']);
  });
});

/** Makes the fake fail after one delta by wrapping its model's generator. */
async function streamWithFailure(
  app: NestExpressApplication,
  backend: FakeBackend,
): Promise<ReturnType<typeof parseSse>> {
  backend.script = { tokens: ['a', 'b'], stepMs: 1 };
  const registry = app.get((await import('../src/registry/model-registry')).ModelRegistry);
  const model = registry.get('demo')!.model;
  const original = model.generate;
  (model as { generate: typeof original }).generate = (req, opts) =>
    (async function* () {
      let i = 0;
      for await (const d of original(req, opts)) {
        if (i++ === 1) throw new Error('boom mid-stream');
        yield d;
      }
    })();
  try {
    const res = await request(app.getHttpServer())
      .post('/v1/chat/completions')
      .send({ model: 'demo', messages: [{ role: 'user', content: 'x' }], stream: true })
      .buffer(true)
      .parse((r, cb) => {
        let data = '';
        r.on('data', (c: Buffer) => (data += c.toString()));
        r.on('end', () => cb(null, data));
      })
      .expect(200);
    return parseSse(res.body as string);
  } finally {
    (model as { generate: typeof original }).generate = original;
  }
}

describe('API keys', () => {
  let app: NestExpressApplication;
  before(async () => {
    app = await bootApp(
      { models: [{ uri: '/bundles/demo' }], apiKeys: ['k-one', 'k-two'] },
      new FakeBackend(),
    );
  });
  after(async () => app.close());

  it('401 without or with a wrong key on /v1/*, 200 with a right one; probes stay open', async () => {
    const none = await request(app.getHttpServer()).get('/v1/models').expect(401);
    assert.equal(none.body.error.type, 'authentication_error');
    const wrong = await request(app.getHttpServer())
      .get('/v1/models')
      .set('Authorization', 'Bearer nope')
      .expect(401);
    assert.equal(wrong.body.error.code, 'invalid_api_key');
    await request(app.getHttpServer()).get('/V1//models').expect(401);
    await request(app.getHttpServer()).get('/v1/models').set('Authorization', 'Bearer k-two').expect(200);
    await request(app.getHttpServer())
      .post('/v1/chat/completions')
      .set('Authorization', 'Bearer k-one')
      .send({ model: 'demo', messages: [{ role: 'user', content: 'x' }] })
      .expect(200);
    await request(app.getHttpServer()).get('/health/live').expect(200);
    await request(app.getHttpServer()).get('/metrics').expect(200);
  });
});

describe('overload and cancellation', () => {
  let app: NestExpressApplication;
  let backend: FakeBackend;
  let port: number;
  before(async () => {
    backend = new FakeBackend();
    app = await bootApp(
      { models: [{ uri: '/bundles/demo' }], maxConcurrentSequences: 1, maxQueuedRequests: 1 },
      backend,
    );
    await app.listen(0, '127.0.0.1');
    port = (app.getHttpServer().address() as AddressInfo).port;
  });
  after(async () => app.close());

  it('429 with Retry-After for a burst beyond running + queued capacity; admitted requests complete', async () => {
    backend.script = { tokens: Array(30).fill('t'), stepMs: 5 };
    const body = { model: 'demo', messages: [{ role: 'user', content: 'x' }] };
    const results = await Promise.all(
      Array.from({ length: 6 }, () => request(app.getHttpServer()).post('/v1/chat/completions').send(body)),
    );
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 200, 429, 429, 429, 429]);
    const refused = results.find((r) => r.status === 429)!;
    assert.equal(refused.headers['retry-after'], '1');
    assert.equal(refused.body.error.type, 'rate_limit_error');
  });

  for (const stream of [true, false]) {
    it(`a client disconnect stops the generation (${stream ? 'streaming' : 'non-streaming'})`, async () => {
      backend.calls.length = 0;
      backend.script = { tokens: Array(2000).fill('t'), stepMs: 2 };
      const events = app.get(GenerationEvents);
      const finished = new Promise<SequenceFinished>((resolve) => {
        const off = events.onFinished((e) => {
          off();
          resolve(e);
        });
      });
      await new Promise<void>((resolve, reject) => {
        const req = http.request({
          host: '127.0.0.1',
          port,
          path: '/v1/chat/completions',
          method: 'POST',
          headers: { 'content-type': 'application/json' },
        });
        req.on('error', () => resolve());
        req.end(JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'x' }], stream }));
        if (stream) {
          req.on('response', (res) => res.once('data', () => (req.destroy(), resolve())));
        } else {
          // Wait until the engine has produced a few steps, then hang up.
          const poll = setInterval(() => {
            if ((backend.calls[0]?.steps ?? 0) >= 3) {
              clearInterval(poll);
              req.destroy();
              resolve();
            }
          }, 2);
        }
        setTimeout(() => reject(new Error('no progress')), 20_000).unref();
      });
      const event = await finished;
      assert.equal(event.finishReason, 'abort');
      const call = backend.calls[0];
      assert.equal(call.aborted, true, 'the engine saw the abort');
      assert.equal(call.done, true, 'the engine iterator finished');
      assert.ok(call.steps < 2000, `stopped early after ${call.steps} steps`);
      const stepsAtAbort = call.steps;
      await new Promise((r) => setTimeout(r, 30));
      assert.equal(call.steps, stepsAtAbort, 'no further steps after the abort');
    });
  }
});
