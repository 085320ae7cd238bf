import assert from 'node:assert/strict';
import sharp from 'sharp';
import type { GenerationRequest, LvrEngine } from '../../src';

// Concurrent greedy requests that exercise a decoding path's batching (joins, leaves, a cancellation, latent steps,
// an image) and the check that two engines on the same bundle give the same outputs.

export interface Outcome {
  ids: number[];
  hidden: Float32Array[];
  finish: string | null;
}

export interface ParityRequest {
  request: GenerationRequest;
  /** Cancel after this many deltas. */
  stopAfter?: number;
}

export async function generate(
  engine: LvrEngine,
  request: GenerationRequest,
  stopAfter?: number,
): Promise<Outcome> {
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

const text = (
  content: string,
  maxTokens: number,
  extra: Partial<GenerationRequest> = {},
): GenerationRequest => ({
  messages: [{ role: 'user', content }],
  sampling: { temperature: 0, ignoreEos: true, maxTokens },
  ...extra,
});

/**
 * Seven requests: two texts of different lengths, an image, a latent block, one cancelled after 5 deltas, a late one,
 * and one asking for logprobs (its tokens are picked from whole logits rows, the others' may come from top candidates).
 */
export async function concurrentRequests(): Promise<ParityRequest[]> {
  const image = await sharp({
    create: { width: 120, height: 90, channels: 3, background: { r: 200, g: 40, b: 90 } },
  })
    .png()
    .toBuffer();
  return [
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
      request: text('latent', 10, { assistantPrefix: '<|lvr_start|>', lvr: { strategy: 'steps', steps: 4 } }),
    },
    { request: text('cancelled by its reader', 20), stopAfter: 5 },
    { request: text('joins late', 7) },
    { request: text('with logprobs', 5, { topLogprobs: 2 }) },
  ];
}

/** Runs `requests` concurrently on both engines: same token ids, finish reasons and forwards, hidden states within 1e-4. */
export async function assertSameOutcomes(
  want: LvrEngine,
  got: LvrEngine,
  requests: ParityRequest[],
): Promise<void> {
  const run = (engine: LvrEngine) =>
    Promise.all(requests.map((r) => generate(engine, r.request, r.stopAfter)));
  const ref = await run(want);
  const out = await run(got);
  requests.forEach((_, i) => {
    assert.deepEqual(out[i].ids, ref[i].ids, `request ${i}: token ids`);
    assert.equal(out[i].finish, ref[i].finish, `request ${i}: finish reason`);
    assert.equal(out[i].hidden.length, ref[i].hidden.length, `request ${i}: forwards`);
    out[i].hidden.forEach((h, k) => {
      const r = ref[i].hidden[k];
      const scale = Math.max(...r.map(Math.abs));
      const err = Math.max(...h.map((v, j) => Math.abs(v - r[j])));
      assert.ok(err <= 1e-4 * scale, `request ${i} forward ${k}: hidden error ${err} vs scale ${scale}`);
    });
  });
  assert.equal(ref[4].finish, 'abort');
  assert.ok(ref[3].hidden.length > 4, 'the latent request ran its latent steps');
}
