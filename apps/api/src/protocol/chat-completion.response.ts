/** `POST /v1/chat/completions` responses (OpenAI schema plus LVR extras). Protocol only. */

export type FinishReasonOut = 'stop' | 'length' | 'abort';

export interface TopLogprobOut {
  token: string;
  logprob: number;
  bytes: number[] | null;
}

export interface TokenLogprobOut extends TopLogprobOut {
  top_logprobs: TopLogprobOut[];
}

export interface ChoiceLogprobsOut {
  content: TokenLogprobOut[];
}

/** One latent placeholder (an id the model sampled while its next input was a fed-back hidden state). */
export interface LatentTraceEntry {
  /** Index among this choice's completion tokens. */
  index: number;
  token_ids: number[];
  text: string;
  /** Only with `logprobs: true`: the placeholders' log-probabilities (they are never in `logprobs.content`). */
  logprobs?: TokenLogprobOut[];
}

/** Per-choice LVR report: how many latent steps ran, and the placeholders when `lvr.return_trace` was set. */
export interface ChoiceLvrOut {
  latent_steps: number;
  trace?: LatentTraceEntry[];
}

export interface UsageOut {
  prompt_tokens: number;
  /** Every generated id, latent placeholders included. */
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number; image_tokens: number };
  /** `latent_steps`: forwards whose input was a fed-back hidden state (also reported as reasoning_tokens). */
  completion_tokens_details: { reasoning_tokens: number; latent_steps: number };
}

export interface ChatCompletionChoiceOut {
  index: number;
  message: { role: 'assistant'; content: string; refusal: null };
  logprobs: ChoiceLogprobsOut | null;
  finish_reason: FinishReasonOut;
  stop_reason: string | number | null;
  lvr: ChoiceLvrOut;
}

export interface ChatCompletionOut {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  system_fingerprint: string | null;
  choices: ChatCompletionChoiceOut[];
  usage: UsageOut;
}

export interface ChunkChoiceOut {
  index: number;
  delta: { role?: 'assistant'; content?: string };
  logprobs: ChoiceLogprobsOut | null;
  finish_reason: FinishReasonOut | null;
  stop_reason?: string | number | null;
  lvr?: ChoiceLvrOut;
}

export interface ChatCompletionChunkOut {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  system_fingerprint: string | null;
  choices: ChunkChoiceOut[];
  usage?: UsageOut | null;
}
