import type { BundleManifest } from './bundle/manifest';
import type { LvrConfig } from './decoding/lvr-state';
import { RequestError } from './errors';
import { MAX_TOP_LOGPROBS } from './sampling/logprobs';
import type { GenerationRequest, SamplingParams, SpecialTokenIds } from './types';

/** Fewest latent steps a request may ask for: a latent block always feeds at least one hidden state back. */
export const MIN_LVR_STEPS = 1;

/** Limits of `SamplingParams` the engine checks itself (callers other than the API reach it too). */
export const SAMPLING_LIMITS = {
  maxAbsOccurrencePenalty: 2,
  maxAbsLogitBias: 100,
} as const;

/** Completion length when neither the request nor the bundle's generation defaults name one. */
const FALLBACK_MAX_TOKENS = 512;
const FALLBACK_LATENT_THRESHOLD = 0.02;

/** Sampling with every default filled in; `maxTokens` is only the default until the context check sets it. */
export type ResolvedSampling = SamplingParams & { maxTokens: number };

/** What one sequence decodes with: resolved sampling, the LVR rule and the logprobs width. */
export interface GenerationConfig {
  sampling: ResolvedSampling;
  lvr: LvrConfig;
  topLogprobs: number | undefined;
}

/**
 * One step between a request and the decode loop: the bundle's generation and LVR defaults under the request's
 * values, then every check the loop relies on. A request that fails here has used no compute.
 */
export class GenerationConfigResolver {
  constructor(
    private readonly manifest: BundleManifest,
    private readonly specialTokens: SpecialTokenIds,
    private readonly vocabSize: number,
    private readonly hasLatentEnd: boolean,
  ) {}

  resolve(request: GenerationRequest): GenerationConfig {
    const sampling = this.sampling(request.sampling);
    const lvr = this.lvr(request);
    this.checkSampling(sampling);
    const topLogprobs = request.topLogprobs;
    if (
      topLogprobs !== undefined &&
      !(Number.isInteger(topLogprobs) && topLogprobs >= 0 && topLogprobs <= MAX_TOP_LOGPROBS)
    ) {
      throw new RequestError(`topLogprobs must be an integer in 0..${MAX_TOP_LOGPROBS}`, 'topLogprobs');
    }
    return { sampling, lvr, topLogprobs };
  }

  private sampling(requested: SamplingParams = {}): ResolvedSampling {
    const defaults = this.manifest.generation as Record<string, number | boolean | undefined>;
    const number = (key: string): number | undefined => defaults[key] as number | undefined;
    const doSample = defaults.do_sample !== false;
    return {
      ...requested,
      temperature: requested.temperature ?? (doSample ? (number('temperature') ?? 1) : 0),
      topK: requested.topK ?? number('top_k'),
      topP: requested.topP ?? number('top_p'),
      repetitionPenalty: requested.repetitionPenalty ?? number('repetition_penalty') ?? 1,
      maxTokens: requested.maxTokens ?? number('max_new_tokens') ?? FALLBACK_MAX_TOKENS,
    };
  }

  private checkSampling(sampling: SamplingParams): void {
    const maxPenalty = SAMPLING_LIMITS.maxAbsOccurrencePenalty;
    for (const [field, value] of [
      ['sampling.presencePenalty', sampling.presencePenalty],
      ['sampling.frequencyPenalty', sampling.frequencyPenalty],
    ] as const) {
      if (value !== undefined && !(Number.isFinite(value) && Math.abs(value) <= maxPenalty))
        throw new RequestError(`${field} must be a number in -${maxPenalty}..${maxPenalty}`, field);
    }
    const maxBias = SAMPLING_LIMITS.maxAbsLogitBias;
    for (const [key, bias] of Object.entries(sampling.logitBias ?? {})) {
      const id = Number(key);
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize)
        throw new RequestError(
          `sampling.logitBias: token id ${key} is not in the vocabulary (0..${this.vocabSize - 1})`,
          'sampling.logitBias',
        );
      if (!(Number.isFinite(bias) && Math.abs(bias) <= maxBias))
        throw new RequestError(
          `sampling.logitBias: the bias of token ${key} must be in -${maxBias}..${maxBias}`,
          'sampling.logitBias',
        );
    }
  }

  private lvr(request: GenerationRequest): LvrConfig {
    const defaults = this.manifest.lvr;
    const requested = request.lvr ?? {};
    const strategy = requested.strategy ?? defaults.strategy;
    const steps = requested.steps ?? defaults.steps;
    if (!Number.isInteger(steps) || steps < MIN_LVR_STEPS)
      throw new RequestError(`lvr.steps must be an integer >= ${MIN_LVR_STEPS}`, 'lvr.steps');
    if (strategy === 'latent' && !this.hasLatentEnd) {
      throw new RequestError(
        "lvr.strategy 'latent' needs a model with latent_end_token=true",
        'lvr.strategy',
      );
    }
    return {
      strategy,
      steps,
      criterion: requested.criterion ?? defaults.latent_criterion ?? 'mse',
      threshold: requested.threshold ?? defaults.latent_threshold ?? FALLBACK_LATENT_THRESHOLD,
      upstreamCompat: requested.upstreamCompat ?? defaults.upstream_compat ?? false,
      lvrStartId: this.specialTokens.lvrStart,
      lvrEndId: this.specialTokens.lvrEnd,
    };
  }
}
