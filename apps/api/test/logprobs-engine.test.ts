import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NestExpressApplication } from '@nestjs/platform-express';
import OpenAI from 'openai';
import { bootEngineApp, DEMO_ID } from './support/engine-app';

// `logprobs` / `top_logprobs` end to end: the official `openai` client against the API on the real engine
// (onnxruntime-node, committed demo bundle).

type TokenLogprob = OpenAI.ChatCompletionTokenLogprob;

/** vLLM extras the SDK types do not know; the SDK sends them unchanged. */
interface Extras {
  ignore_eos?: boolean;
  repetition_penalty?: number;
  continue_final_message?: boolean;
  add_generation_prompt?: boolean;
  lvr?: { strategy?: string; steps?: number; return_trace?: boolean };
}
interface TraceEntry {
  index: number;
  token_ids: number[];
  text: string;
  logprobs?: TokenLogprob[];
}

const decodeUtf8 = (entries: TokenLogprob[]): string =>
  new TextDecoder().decode(Uint8Array.from(entries.flatMap((e) => e.bytes ?? [])));

function assertWellFormed(entry: TokenLogprob, k: number): void {
  assert.equal(typeof entry.token, 'string');
  assert.ok(Array.isArray(entry.bytes) && entry.bytes.length > 0, `bytes of ${JSON.stringify(entry.token)}`);
  assert.ok(entry.logprob <= 0 && Number.isFinite(entry.logprob), `logprob ${entry.logprob}`);
  assert.equal(entry.top_logprobs.length, k);
  for (let i = 1; i < k; i++)
    assert.ok(entry.top_logprobs[i - 1].logprob >= entry.top_logprobs[i].logprob, 'sorted');
  const mass = entry.top_logprobs.reduce((s, t) => s + Math.exp(t.logprob), 0);
  assert.ok(mass <= 1 + 1e-6, `top-${k} probability mass ${mass}`);
}

describe('logprobs on the real engine (official openai client)', () => {
  let app: NestExpressApplication;
  let client: OpenAI;
  const create = (body: OpenAI.ChatCompletionCreateParamsNonStreaming & Extras) =>
    client.chat.completions.create(body as OpenAI.ChatCompletionCreateParamsNonStreaming);

  before(async () => {
    const booted = await bootEngineApp({ maxCompletionTokens: 4000 });
    app = booted.app;
    client = new OpenAI({ apiKey: 'unused', baseURL: `${booted.url}/v1`, maxRetries: 0 });
  });
  after(async () => app?.close());

  const greedy = {
    model: DEMO_ID,
    max_tokens: 8,
    temperature: 0,
    repetition_penalty: 1,
    ignore_eos: true,
    messages: [{ role: 'user' as const, content: 'Name three colours.' }],
  };

  it('returns one entry per generated token with top_logprobs; greedy picks the most likely token', async () => {
    const res = await create({ ...greedy, logprobs: true, top_logprobs: 5 });
    const choice = res.choices[0];
    const content = choice.logprobs!.content!;
    assert.equal(content.length, res.usage!.completion_tokens);
    assert.equal(content.length, 8);
    for (const entry of content) {
      assertWellFormed(entry, 5);
      // Temperature 0 without repetition penalty is argmax of the raw distribution: the chosen token is the top one.
      assert.equal(entry.token, entry.top_logprobs[0].token);
      assert.deepEqual(entry.bytes, entry.top_logprobs[0].bytes);
      assert.equal(entry.logprob, entry.top_logprobs[0].logprob);
    }
    assert.equal(decodeUtf8(content), choice.message.content, 'token bytes spell the answer');
  });

  it('reports the raw distribution: the repetition penalty changes the pick, not the reported logprobs', async () => {
    const plain = await create({ ...greedy, logprobs: true, top_logprobs: 3 });
    const penalised = await create({ ...greedy, repetition_penalty: 10, logprobs: true, top_logprobs: 3 });
    const a = plain.choices[0].logprobs!.content!;
    const b = penalised.choices[0].logprobs!.content!;
    // Same prompt, same first forward: identical raw log-probabilities for the first position.
    assert.deepEqual(b[0].top_logprobs, a[0].top_logprobs);
    // The tiny model repeats its raw argmax; a strong penalty forbids repeats, so later picks are not the raw argmax
    // and their reported logprob is below the top one.
    assert.equal(new Set(a.map((e) => e.token)).size, 1, 'unpenalised greedy repeats one token');
    const demoted = b.filter((e) => e.token !== e.top_logprobs[0].token);
    assert.ok(demoted.length >= 3, `${demoted.length} penalised picks`);
    for (const e of demoted) assert.ok(e.logprob < e.top_logprobs[0].logprob);
  });

  it('top_logprobs 0 gives the chosen token only; logprobs off gives null', async () => {
    const zero = await create({ ...greedy, max_tokens: 3, logprobs: true, top_logprobs: 0 });
    const content = zero.choices[0].logprobs!.content!;
    assert.equal(content.length, 3);
    content.forEach((e) => assertWellFormed(e, 0));
    const off = await create({ ...greedy, max_tokens: 3 });
    assert.equal(off.choices[0].logprobs, null);
  });

  it('streams logprobs in the chunks; they equal the non-streamed ones', async () => {
    const whole = await create({ ...greedy, logprobs: true, top_logprobs: 2 });
    const stream = await client.chat.completions.create({
      ...greedy,
      logprobs: true,
      top_logprobs: 2,
      stream: true,
    } as OpenAI.ChatCompletionCreateParamsStreaming);
    const streamed: TokenLogprob[] = [];
    let text = '';
    for await (const chunk of stream) {
      for (const c of chunk.choices) {
        text += c.delta.content ?? '';
        streamed.push(...(c.logprobs?.content ?? []));
      }
    }
    assert.equal(text, whole.choices[0].message.content);
    assert.deepEqual(streamed, whole.choices[0].logprobs!.content);
  });

  it('latent placeholders are left out of logprobs.content and reported in lvr.trace', async () => {
    const body = {
      ...greedy,
      max_tokens: 10,
      messages: [
        { role: 'user' as const, content: 'Think first.' },
        { role: 'assistant' as const, content: '<|lvr_start|>' },
      ],
      continue_final_message: true,
      add_generation_prompt: false,
      logprobs: true,
      top_logprobs: 2,
    };
    const res = await create({ ...body, lvr: { strategy: 'steps', steps: 3, return_trace: true } });
    const choice = res.choices[0] as OpenAI.ChatCompletion.Choice & {
      lvr: { latent_steps: number; trace: TraceEntry[] };
    };
    assert.equal(choice.lvr.latent_steps, 3);
    assert.equal(res.usage!.completion_tokens, 10);
    assert.equal(choice.logprobs!.content!.length, 10 - 3, 'visible tokens only');
    assert.equal(choice.lvr.trace.length, 3);
    for (const t of choice.lvr.trace) {
      assert.equal(t.logprobs?.length, 1);
      assertWellFormed(t.logprobs![0], 2);
    }
    const hidden = await create({ ...body, lvr: { strategy: 'steps', steps: 3 } });
    assert.deepEqual(hidden.choices[0].logprobs, choice.logprobs, 'trace on or off: same content logprobs');
  });

  it('rejects top_logprobs above 20 with an SDK BadRequestError', async () => {
    await assert.rejects(
      create({ ...greedy, logprobs: true, top_logprobs: 21 }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'top_logprobs',
    );
  });
});
