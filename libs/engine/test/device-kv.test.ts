import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { LvrEngine, type GenerationRequest } from '../src';

// The device-KV path (caches kept in the EP's memory, batch repacks run as graphs: what WebGPU uses) on the CPU EP,
// against the host path, over the committed tiny fp32 bundle: greedy outputs must be token-identical.
const BUNDLE = path.resolve(__dirname, '../../../models/lvr-tiny-demo');

interface Outcome {
  ids: number[];
  hidden: Float32Array[];
  finish: string | null;
}

async function generate(engine: LvrEngine, request: GenerationRequest, stopAfter?: number): Promise<Outcome> {
  const out: Outcome = { ids: [], hidden: [], finish: null };
  const abort = new AbortController();
  let deltas = 0;
  for await (const d of engine.generate(
    request,
    { signal: abort.signal },
    { onHidden: (h) => out.hidden.push(Float32Array.from(h)) },
  )) {
    out.ids.push(...d.tokenIds);
    if (d.finishReason) out.finish = d.finishReason;
    if (stopAfter !== undefined && ++deltas === stopAfter) abort.abort();
  }
  return out;
}

describe('engine: KV caches repacked by graphs (device-KV path) on the CPU EP', () => {
  let host: LvrEngine;
  let graph: LvrEngine;
  let requests: Array<{ request: GenerationRequest; stopAfter?: number }>;

  before(async () => {
    host = await LvrEngine.load(BUNDLE, { threads: 1, verifyChecksums: false, maxBatchSize: 3 });
    graph = await LvrEngine.load(BUNDLE, {
      threads: 1,
      verifyChecksums: false,
      maxBatchSize: 3,
      deviceKv: true,
    });
    const image = await sharp({
      create: { width: 120, height: 90, channels: 3, background: { r: 200, g: 40, b: 90 } },
    })
      .png()
      .toBuffer();
    const text = (
      content: string,
      maxTokens: number,
      extra: Partial<GenerationRequest> = {},
    ): GenerationRequest => ({
      messages: [{ role: 'user', content }],
      sampling: { temperature: 0, ignoreEos: true, maxTokens },
      ...extra,
    });
    requests = [
      { request: text('a short one', 6) },
      { request: text('a much longer prompt, so that its row is the widest of the batch for a while', 14) },
      {
        request: {
          messages: [
            {
              role: 'user',
              content: [
                { type: 'image', image },
                { type: 'text', text: 'and this?' },
              ],
            },
          ],
          sampling: { temperature: 0, ignoreEos: true, maxTokens: 9 },
        },
      },
      {
        request: text('latent', 10, {
          assistantPrefix: '<|lvr_start|>',
          lvr: { strategy: 'steps', steps: 4 },
        }),
      },
      { request: text('cancelled by its reader', 20), stopAfter: 5 },
      { request: text('joins late', 7) },
    ];
  });

  after(async () => {
    await host?.close();
    await graph?.close();
  });

  it('concurrent requests (joins, leaves, a cancellation, latent steps, an image) give the host path’s tokens', async () => {
    const run = (engine: LvrEngine) =>
      Promise.all(requests.map((r) => generate(engine, r.request, r.stopAfter)));
    const want = await run(host);
    const got = await run(graph);
    assert.ok(graph.batchStats.maxRows > 1, 'requests were batched, so rows were repacked by the graphs');
    requests.forEach((_, i) => {
      assert.deepEqual(got[i].ids, want[i].ids, `request ${i}: token ids`);
      assert.equal(got[i].finish, want[i].finish, `request ${i}: finish reason`);
      assert.equal(got[i].hidden.length, want[i].hidden.length, `request ${i}: forwards`);
      got[i].hidden.forEach((h, k) => {
        const ref = want[i].hidden[k];
        const scale = Math.max(...ref.map(Math.abs));
        const err = Math.max(...h.map((v, j) => Math.abs(v - ref[j])));
        assert.ok(err <= 1e-4 * scale, `request ${i} forward ${k}: hidden error ${err} vs scale ${scale}`);
      });
    });
    assert.equal(want[4].finish, 'abort');
    assert.ok(want[3].hidden.length > 4, 'the latent request ran its latent steps');
  });
});
