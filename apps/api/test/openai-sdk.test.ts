import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NestExpressApplication } from '@nestjs/platform-express';
import OpenAI from 'openai';
import { GenerationEvents, type SequenceFinished } from '../src/chat/generation-events';
import { bootEngineApp, DEMO_ID } from './support/engine-app';
import { pngDataUrl } from './support/images';

// The official `openai` npm client against the API running the real engine on the demo bundle.

describe('official openai client (real engine)', () => {
  let app: NestExpressApplication;
  let client: OpenAI;
  before(async () => {
    const booted = await bootEngineApp({ apiKeys: ['sk-test-key'], maxCompletionTokens: 4000 });
    app = booted.app;
    client = new OpenAI({ apiKey: 'sk-test-key', baseURL: `${booted.url}/v1`, maxRetries: 0 });
  });
  after(async () => app?.close());

  it('lists and retrieves models', async () => {
    const models = [];
    for await (const m of client.models.list()) models.push(m);
    assert.deepEqual(
      models.map((m) => m.id),
      [DEMO_ID],
    );
    const one = await client.models.retrieve(DEMO_ID);
    assert.equal(one.object, 'model');
  });

  it('creates a chat completion with an image and reports usage', async () => {
    const completion = await client.chat.completions.create({
      model: DEMO_ID,
      max_tokens: 8,
      temperature: 0,
      messages: [
        { role: 'system', content: 'You are terse.' },
        {
          role: 'user',
          content: [
            { type: 'image_url', image_url: { url: await pngDataUrl(64, 48) } },
            { type: 'text', text: 'What colour is this?' },
          ],
        },
      ],
    });
    assert.equal(completion.object, 'chat.completion');
    assert.equal(completion.choices.length, 1);
    assert.equal(typeof completion.choices[0].message.content, 'string');
    assert.ok(['stop', 'length'].includes(completion.choices[0].finish_reason));
    const usage = completion.usage!;
    assert.ok(usage.prompt_tokens > 4, 'image tokens count as prompt tokens');
    assert.ok(usage.completion_tokens >= 1 && usage.completion_tokens <= 8);
    assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
  });

  it('streams with include_usage: same text as the non-streamed greedy answer', async () => {
    const params = {
      model: DEMO_ID,
      max_tokens: 10,
      temperature: 0,
      seed: 3,
      messages: [{ role: 'user' as const, content: 'Count to five.' }],
    };
    const whole = await client.chat.completions.create(params);
    const stream = await client.chat.completions.create({
      ...params,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks += 1;
      assert.equal(chunk.object, 'chat.completion.chunk');
      if (chunk.usage) usage = chunk.usage;
      for (const choice of chunk.choices) {
        text += choice.delta.content ?? '';
        if (choice.finish_reason) finish = choice.finish_reason;
      }
    }
    assert.ok(chunks >= 3);
    assert.equal(text, whole.choices[0].message.content);
    assert.equal(finish, whole.choices[0].finish_reason);
    assert.deepEqual(usage && { p: usage.prompt_tokens, c: usage.completion_tokens }, {
      p: whole.usage!.prompt_tokens,
      c: whole.usage!.completion_tokens,
    });
  });

  it('surfaces API errors as the SDK error classes', async () => {
    await assert.rejects(
      client.chat.completions.create({ model: 'ghost', messages: [{ role: 'user', content: 'x' }] }),
      (e: unknown) =>
        e instanceof OpenAI.NotFoundError &&
        e.status === 404 &&
        (e.error as { code?: string }).code === 'model_not_found',
    );
    await assert.rejects(
      client.chat.completions.create({
        model: DEMO_ID,
        messages: [{ role: 'user', content: 'x' }],
        temperature: 9,
      }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'temperature',
    );
    const anonymous = new OpenAI({ apiKey: 'wrong', baseURL: client.baseURL, maxRetries: 0 });
    await assert.rejects(anonymous.models.list(), (e: unknown) => e instanceof OpenAI.AuthenticationError);
  });

  it('aborting a stream from the client stops the engine early', async () => {
    const events = app.get(GenerationEvents);
    const finished = new Promise<SequenceFinished>((resolve) => {
      const off = events.onFinished((e) => (off(), resolve(e)));
    });
    const controller = new AbortController();
    const stream = await client.chat.completions.create(
      {
        model: DEMO_ID,
        max_tokens: 4000,
        ignore_eos: true,
        stream: true,
        messages: [{ role: 'user', content: 'go' }],
      } as OpenAI.ChatCompletionCreateParamsStreaming,
      { signal: controller.signal },
    );
    let seen = 0;
    for await (const _ of stream) {
      if (++seen === 3) controller.abort();
    }
    // Chunks that arrived in the same network read as the third one may still be yielded after the abort.
    assert.ok(seen >= 3 && seen < 20, `the SDK stopped iterating soon after the abort (${seen} chunks)`);
    const event = await finished;
    assert.equal(event.finishReason, 'abort');
    assert.ok(event.completionTokens < 4000, `engine stopped after ${event.completionTokens} of 4000 tokens`);
    const again = await client.chat.completions.create({
      model: DEMO_ID,
      max_tokens: 2,
      messages: [{ role: 'user', content: 'x' }],
    });
    assert.equal(again.choices.length, 1);
  });
});
