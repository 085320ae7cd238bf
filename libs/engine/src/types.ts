/**
 * Public types of the LVR inference engine. The API layer codes against these; keep them stable and additive.
 */
import type { GpuAttentionKernel } from './runtime/fused-native';

/** Where ONNX graphs run. `cuda` needs the CUDA EP libraries next to onnxruntime-node. */
export type ExecutionProviderName = 'cpu' | 'webgpu' | 'cuda';

export interface TextPart {
  type: 'text';
  text: string;
}

/** An encoded image (JPEG, PNG, WebP or GIF bytes). Fetching URLs is the caller's job. */
export interface ImagePart {
  type: 'image';
  image: Uint8Array;
}

export type ContentPart = TextPart | ImagePart;

export type ChatRole = 'system' | 'user' | 'assistant';

export interface ChatMessage {
  role: ChatRole;
  content: string | ContentPart[];
}

/** Sampling parameters; every field is optional and falls back to the bundle's generation defaults. */
export interface SamplingParams {
  /** 0 means greedy. */
  temperature?: number;
  /** 0 or undefined disables top-k. */
  topK?: number;
  /** 1 or undefined disables top-p. */
  topP?: number;
  /** 0 or undefined disables min-p. */
  minP?: number;
  /** HF semantics over prompt + every generated id (latent placeholders included). 1 disables it. */
  repetitionPenalty?: number;
  /** OpenAI/vLLM: subtracted once from the logit of every id generated so far (-2..2; 0 disables it). */
  presencePenalty?: number;
  /** OpenAI/vLLM: subtracted from each generated id's logit once per occurrence (-2..2; 0 disables it). */
  frequencyPenalty?: number;
  /**
   * OpenAI `logit_bias`: token id → bias (-100..100) added to its logit before the penalties and sampling; on the LVR
   * ids it steers latent blocks (e.g. `{151665: 100}` forces `<|lvr_start|>`). Ids must be in the vocabulary.
   */
  logitBias?: Record<number, number>;
  /** Seed of the per-request generator; without it a random seed is drawn. */
  seed?: number;
  /** Generation stops when the decoded completion contains one of these; the match is not returned. */
  stop?: string[];
  /** Extra stop token ids on top of the bundle's EOS ids (unless ignoreEos). */
  stopTokenIds?: number[];
  /** Maximum completion tokens (latent placeholders count). */
  maxTokens?: number;
  /** Do not stop on the bundle's EOS ids. */
  ignoreEos?: boolean;
  /** Drop special tokens from the streamed text (default true; the four LVR tokens are kept when not special). */
  skipSpecialTokens?: boolean;
}

/**
 * LVR decoding strategies (LVR-SPEC §4):
 * - `steps`: after `<|lvr_start|>` feed exactly `steps` hidden states back (evaluation / RL default).
 * - `latent`: feed hidden states back until one is close to the learned latent-end vector or `steps` is reached.
 * - `end_token`: feed hidden states back until a latent step samples `<|lvr_end|>` (capped by `steps`
 *   unless `upstreamCompat`).
 * - `none`: never enter latent mode (`<|lvr_start|>` is an ordinary token).
 */
export const LVR_STRATEGIES = ['steps', 'latent', 'end_token', 'none'] as const;
export type LvrStrategy = (typeof LVR_STRATEGIES)[number];

export type LatentCriterion = 'mse' | 'mae' | 'cosine';

export interface LvrParams {
  strategy?: LvrStrategy;
  /** Latent step quota (`steps`) or cap (`latent`, `end_token`). */
  steps?: number;
  /** `latent` strategy: distance criterion and threshold against the latent-end vector. */
  criterion?: LatentCriterion;
  threshold?: number;
  /** Reproduce the released code's quirks (see the reference's `upstream_compat`). */
  upstreamCompat?: boolean;
}

export interface ImageOptions {
  minPixels?: number;
  maxPixels?: number;
}

export interface GenerationRequest {
  messages: ChatMessage[];
  sampling?: SamplingParams;
  lvr?: LvrParams;
  /** Append `<|im_start|>assistant\n` (default true). */
  addGenerationPrompt?: boolean;
  /** Text appended after the generation prompt, e.g. `<|lvr_start|>` to force a latent block. */
  assistantPrefix?: string;
  image?: ImageOptions;
  /**
   * Log-probabilities: when set (0..20), every delta with a token carries `logprobs` with the chosen token's
   * log-probability and this many most likely alternatives. Undefined (default) computes nothing.
   */
  topLogprobs?: number;
}

export interface GenerateOptions {
  /** Aborting stops compute within one decode step; the iterator then ends with finishReason `abort`. */
  signal?: AbortSignal;
}

export type FinishReason = 'stop' | 'length' | 'abort';

/**
 * One candidate token and its log-probability under the raw model distribution: log-softmax of the forward's logits
 * before repetition penalty, temperature and top-k/top-p/min-p (vLLM's default `raw_logprobs`).
 */
export interface TokenAlternative {
  tokenId: number;
  /** The token decoded on its own (special tokens kept; a partial UTF-8 sequence decodes to U+FFFD). */
  token: string;
  /** The token's raw UTF-8 bytes. */
  bytes: number[];
  logprob: number;
}

/** The chosen token's log-probability plus the most likely alternatives (most likely first, ties by lower id). */
export interface TokenLogprob extends TokenAlternative {
  topLogprobs: TokenAlternative[];
}

export interface Usage {
  promptTokens: number;
  /** Every generated id, latent placeholders included. */
  completionTokens: number;
  totalTokens: number;
  /** Forward passes whose input was a fed-back hidden state. */
  latentSteps: number;
  /** `<|image_pad|>` tokens in the prompt. */
  imageTokens: number;
}

export interface Timings {
  preprocessMs: number;
  /** From a free decode slot to the first forward's result: the vision graph, then the prompt's forward. */
  prefillMs: number;
  /** The vision graph's share of `prefillMs`. */
  visionMs: number;
  decodeMs: number;
  /** Decode steps whose input was a token / a latent. */
  tokenSteps: number;
  latentSteps: number;
}

/**
 * One decode step's output. `latent` is true when the model's next input is this step's hidden state, i.e. the
 * token is a placeholder the reference still decodes and penalises. The last delta carries `finishReason`,
 * `usage` and `timings`; it may have empty text.
 */
export interface GenerationDelta {
  text: string;
  tokenIds: number[];
  latent: boolean;
  finishReason: FinishReason | null;
  /** The stop string or stop token id that ended generation. */
  stopReason?: string | number;
  usage?: Usage;
  timings?: Timings;
  /**
   * Only when the request set `topLogprobs`: one entry per id in `tokenIds`, latent placeholders included (their
   * logits are those of the latent forward they were picked from).
   */
  logprobs?: TokenLogprob[];
}

export interface SpecialTokenIds {
  imagePad: number;
  visionStart: number;
  visionEnd: number;
  lvrStart: number;
  lvr: number;
  lvrLatentEnd: number;
  lvrEnd: number;
  eos: number[];
  pad: number;
}

export interface ModelInfo {
  id: string;
  maxContextTokens: number;
  vocabSize: number;
  hiddenSize: number;
  specialTokens: SpecialTokenIds;
  lvrDefaults: Required<Pick<LvrParams, 'strategy' | 'steps'>>;
  executionProvider: ExecutionProviderName;
  /**
   * The decoder that runs the steps: `plain` (graphs.decoder through onnxruntime-node), `fused` (graphs.decoder_fused
   * through the native addon) or `fused-cuda-graph` (the same, its step captured in a CUDA graph; a graph ONNX Runtime
   * cannot capture runs as `fused`).
   */
  decoder: 'plain' | 'fused' | 'fused-cuda-graph';
  /** The fused decoder's GroupQueryAttention decode kernel on the CUDA EP (`EngineLoadOptions.attentionKernel`). */
  gpuAttention?: GpuAttentionKernel;
  /**
   * The fused decoder's projections: `lvr` (graphs.decoder_fused_lvr, the addon's own kernels) or `onnx`
   * (graphs.decoder_fused, ONNX Runtime's); absent for the plain decoder (`EngineLoadOptions.fusedProjections`).
   */
  fusedProjections?: FusedProjections;
}

/** Who runs the fused decoder's projections (`EngineLoadOptions.fusedProjections`). */
export type FusedProjections = 'lvr' | 'onnx';
