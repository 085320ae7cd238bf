import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import type { BundleManifest } from '../src/bundle/manifest';
import { GenerationConfigResolver, MIN_LVR_STEPS } from '../src/generation-config';
import { RequestError, type GenerationRequest, type SpecialTokenIds } from '../src';

// The generation-config step on its own: the demo bundle's defaults under the request's values, and the checks that
// run before any compute.
const manifest = JSON.parse(
  fs.readFileSync(path.resolve(__dirname, '../../../models/lvr-tiny-demo/manifest.json'), 'utf8'),
) as BundleManifest;
const special: SpecialTokenIds = {
  imagePad: manifest.special_tokens.image_pad_id,
  visionStart: manifest.special_tokens.vision_start_id,
  visionEnd: manifest.special_tokens.vision_end_id,
  lvrStart: manifest.special_tokens.lvr_start_id,
  lvr: manifest.special_tokens.lvr_id,
  lvrLatentEnd: manifest.special_tokens.lvr_latent_end_id,
  lvrEnd: manifest.special_tokens.lvr_end_id,
  eos: manifest.special_tokens.eos_ids,
  pad: manifest.special_tokens.pad_id,
};
const vocab = manifest.architecture.vocab_size;
const resolver = (hasLatentEnd = false): GenerationConfigResolver =>
  new GenerationConfigResolver(manifest, special, vocab, hasLatentEnd);
const request = (over: Partial<GenerationRequest> = {}): GenerationRequest => ({
  messages: [{ role: 'user', content: 'hi' }],
  ...over,
});
const rejectsWith = (fn: () => unknown, field: string): void =>
  assert.throws(fn, (e: unknown) => e instanceof RequestError && e.field === field);

describe('generation config (bundle defaults, then request values, then checks)', () => {
  it("fills in the bundle's LVR defaults and keeps the request's values", () => {
    const defaults = resolver().resolve(request());
    assert.equal(defaults.lvr.strategy, manifest.lvr.strategy);
    assert.equal(defaults.lvr.steps, manifest.lvr.steps);
    assert.equal(defaults.lvr.lvrStartId, special.lvrStart);
    assert.equal(defaults.topLogprobs, undefined);
    const asked = resolver().resolve(
      request({ lvr: { strategy: 'end_token', steps: 3 }, sampling: { temperature: 0 }, topLogprobs: 2 }),
    );
    assert.equal(asked.lvr.strategy, 'end_token');
    assert.equal(asked.lvr.steps, 3);
    assert.equal(asked.sampling.temperature, 0);
    assert.equal(asked.topLogprobs, 2);
  });

  it(`refuses lvr.steps below ${MIN_LVR_STEPS}, naming the field`, () => {
    rejectsWith(() => resolver().resolve(request({ lvr: { steps: 0 } })), 'lvr.steps');
    rejectsWith(() => resolver().resolve(request({ lvr: { steps: 1.5 } })), 'lvr.steps');
  });

  it('refuses the latent strategy on a bundle without a latent-end vector', () => {
    rejectsWith(() => resolver(false).resolve(request({ lvr: { strategy: 'latent' } })), 'lvr.strategy');
    assert.equal(resolver(true).resolve(request({ lvr: { strategy: 'latent' } })).lvr.strategy, 'latent');
  });

  it('checks penalties, logit bias ids and the logprobs width in engine terms', () => {
    rejectsWith(
      () => resolver().resolve(request({ sampling: { presencePenalty: 3 } })),
      'sampling.presencePenalty',
    );
    rejectsWith(
      () => resolver().resolve(request({ sampling: { logitBias: { [vocab]: 1 } } })),
      'sampling.logitBias',
    );
    rejectsWith(() => resolver().resolve(request({ topLogprobs: 21 })), 'topLogprobs');
  });
});
