import type {
  BundleSource,
  GenerateOptions,
  GenerationDelta,
  GenerationRequest,
  ModelInfo,
} from '@lvr/engine';

/** One alternative of a sampled token, OpenAI's `top_logprobs` entry (the engine's `TokenAlternative` fits). */
export interface TokenAlternative {
  token: string;
  logprob: number;
  bytes: number[] | null;
  tokenId?: number;
}

/** Log-probability of one emitted token with its top alternatives. */
export interface TokenLogprob extends TokenAlternative {
  topLogprobs: TokenAlternative[];
}

/** What the API asks of a backend, on top of the engine's request. */
export interface BackendRequest extends GenerationRequest {
  /** Number of alternatives to report per token; undefined = no log-probabilities. */
  topLogprobs?: number;
}

/** The engine's delta, plus log-probabilities when the backend can compute them. */
export interface BackendDelta extends Omit<GenerationDelta, 'logprobs'> {
  /** One entry per id in `tokenIds`, when requested and supported. */
  logprobs?: TokenLogprob[];
}

export interface BackendCapabilities {
  logprobs: boolean;
}

/** A model loaded into the process and ready to generate. */
export interface LoadedModel {
  readonly info: ModelInfo;
  readonly capabilities: BackendCapabilities;
  /** Prompt length in tokens (images included, from their headers) for the context check; no model compute. */
  countPromptTokens(request: BackendRequest): Promise<number>;
  /**
   * Streams deltas. Aborting `options.signal` stops compute within one decode step; the last delta then has
   * finishReason `abort`. Rejects with engine `RequestError` for unservable requests (mapped to HTTP 400).
   */
  generate(request: BackendRequest, options: GenerateOptions): AsyncIterable<BackendDelta>;
  close(): Promise<void>;
}

/** Loads bundles into runnable models. Production: `EngineBackend` (libs/engine); unit tests: a fake. */
export interface InferenceBackend {
  load(source: string | BundleSource): Promise<LoadedModel>;
}

export const INFERENCE_BACKEND = Symbol('InferenceBackend');
