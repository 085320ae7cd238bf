import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { LvrEngine, RequestError, type GenerationDelta, type GenerationRequest } from '../src';

// The context limit on the engine API, over the committed demo bundle (tiny, real ONNX sessions).
const BUNDLE = path.resolve(__dirname, '../../../models/lvr-tiny-demo');

async function png(width: number, height: number): Promise<Uint8Array> {
  return sharp({ create: { width, height, channels: 3, background: { r: 10, g: 200, b: 90 } } })
    .png()
    .toBuffer();
}

async function drain(engine: LvrEngine, request: GenerationRequest): Promise<GenerationDelta[]> {
  const out: GenerationDelta[] = [];
  for await (const d of engine.generate(request)) out.push(d);
  return out;
}

describe('engine: context length (max_model_len) checked before any compute', () => {
  let engine: LvrEngine;
  let small: LvrEngine;
  let imageRequest: GenerationRequest;
  let promptTokens: number;

  before(async () => {
    engine = await LvrEngine.load(BUNDLE, { threads: 1, verifyChecksums: false });
    imageRequest = {
      messages: [
        {
          role: 'user',
          content: [
            { type: 'image', image: await png(140, 84) },
            { type: 'text', text: 'What is this?' },
          ],
        },
      ],
      sampling: { temperature: 0, ignoreEos: true },
    };
    promptTokens = await engine.countPromptTokens(imageRequest);
    small = await LvrEngine.load(BUNDLE, {
      threads: 1,
      verifyChecksums: false,
      maxModelLen: promptTokens + 3,
    });
  });
  after(async () => {
    await engine?.close();
    await small?.close();
  });

  it('counts image tokens from the image header, equal to the decoded prompt', async () => {
    const prepared = await engine.preparePrompt(imageRequest);
    assert.equal(promptTokens, prepared.ids.length);
    assert.ok(prepared.imageTokens > 0 && promptTokens > prepared.imageTokens);
    // EXIF orientation 6 swaps width and height, in the count as in decoding.
    const rotated = await sharp(await png(168, 56))
      .jpeg()
      .withMetadata({ orientation: 6 })
      .toBuffer();
    const req: GenerationRequest = {
      messages: [{ role: 'user', content: [{ type: 'image', image: rotated }] }],
    };
    assert.equal(await engine.countPromptTokens(req), (await engine.preparePrompt(req)).ids.length);
  });

  it("the bundle's context length is served unless a smaller override is given; a larger one is refused", async () => {
    assert.equal(engine.info.maxContextTokens, 32768, 'the demo bundle predates the field: the default');
    assert.equal(small.info.maxContextTokens, promptTokens + 3);
    await assert.rejects(
      LvrEngine.load(BUNDLE, { verifyChecksums: false, maxModelLen: 40000 }),
      /maxModelLen must be an integer in 1\.\.32768/,
    );
  });

  it('prompt + max tokens over the limit: RequestError in vLLM wording, nothing computed', async () => {
    let prompted = false;
    const run = async () => {
      for await (const d of small.generate(
        { ...imageRequest, sampling: { ...imageRequest.sampling, maxTokens: 4 } },
        {},
        { onPrompt: () => (prompted = true) },
      ))
        void d;
    };
    await assert.rejects(run, (e: unknown) => {
      assert.ok(e instanceof RequestError);
      assert.equal(e.param, 'messages');
      assert.equal(e.code, 'context_length_exceeded');
      assert.equal(
        e.message,
        `This model's maximum context length is ${promptTokens + 3} tokens. However, you requested ` +
          `${promptTokens + 4} tokens (${promptTokens} in the messages, 4 in the completion). ` +
          'Please reduce the length of the messages or completion.',
      );
      return true;
    });
    assert.equal(prompted, false, 'refused before images were decoded or the model ran');
    assert.equal(small.batchStats.calls, 0);
  });

  it('without max tokens the completion is capped by the room left; a full prompt is refused', async () => {
    const ds = await drain(small, imageRequest);
    assert.equal(ds.at(-1)!.finishReason, 'length');
    assert.equal(ds.at(-1)!.usage!.completionTokens, 3);
    const exact = await drain(small, {
      ...imageRequest,
      sampling: { ...imageRequest.sampling, maxTokens: 3 },
    });
    assert.equal(exact.at(-1)!.usage!.completionTokens, 3, 'prompt + max tokens = limit is allowed');
    const long: GenerationRequest = {
      messages: [{ role: 'user', content: 'word '.repeat(promptTokens + 10) }],
    };
    await assert.rejects(drain(small, long), /However, you requested \d+ tokens in the messages/);
  });
});
