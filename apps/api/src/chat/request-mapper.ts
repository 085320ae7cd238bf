import type { ChatMessage, ContentPart } from '@lvr/engine';
import type { ApiConfig } from '../config/api-config';
import { ApiError } from '../errors/api-error';
import type { BackendRequest } from '../inference/backend';
import type { ChatCompletionRequestDto, ContentPartDto } from '../protocol/chat-completion.request';

/**
 * The completion limit the client asked for (`max_completion_tokens` ?? `max_tokens`), checked against the server's
 * cap; undefined when it named none (the context check then picks the default, capped by the room left).
 */
export function askedMaxTokens(dto: ChatCompletionRequestDto, config: ApiConfig): number | undefined {
  const asked = dto.max_completion_tokens ?? dto.max_tokens;
  if (asked === undefined) return undefined;
  if (asked > config.maxCompletionTokens) {
    throw ApiError.badRequest(
      `max_tokens is ${asked}; this server allows at most ${config.maxCompletionTokens}`,
      dto.max_completion_tokens !== undefined ? 'max_completion_tokens' : 'max_tokens',
    );
  }
  return asked;
}

/** Image parts in request order, with their `param` path. */
export function imageParts(parts: ContentPartDto[][]): Array<{ url: string; param: string }> {
  const out: Array<{ url: string; param: string }> = [];
  parts.forEach((message, i) =>
    message.forEach((part, j) => {
      if (part.type === 'image_url')
        out.push({ url: part.image_url.url, param: `messages[${i}].content[${j}].image_url.url` });
    }),
  );
  return out;
}

/**
 * Builds the engine request of choice `choiceIndex`. `images` holds the decoded bytes of `imageParts()` in order.
 * With `n > 1` and a seed, choice i uses seed + i so choices differ but stay reproducible.
 */
export function toBackendRequest(
  dto: ChatCompletionRequestDto,
  parts: ContentPartDto[][],
  images: Uint8Array[],
  maxTokens: number | undefined,
  choiceIndex: number,
): BackendRequest {
  let imageIndex = 0;
  let messages: ChatMessage[] = dto.messages.map((message, i) => {
    const role = message.role === 'developer' ? 'system' : message.role;
    if (typeof message.content === 'string') return { role, content: message.content };
    const content: ContentPart[] = parts[i].map((part) =>
      part.type === 'text'
        ? { type: 'text', text: part.text }
        : { type: 'image', image: images[imageIndex++] },
    );
    return { role, content };
  });
  // vLLM's continue_final_message: the last assistant message becomes the start of the answer.
  let assistantPrefix: string | undefined;
  if (dto.continue_final_message) {
    const last = messages[messages.length - 1];
    assistantPrefix =
      typeof last.content === 'string'
        ? last.content
        : last.content.map((p) => (p.type === 'text' ? p.text : '')).join('');
    messages = messages.slice(0, -1);
  }
  const stop = dto.stop === undefined ? undefined : typeof dto.stop === 'string' ? [dto.stop] : dto.stop;
  const request: BackendRequest = {
    messages,
    sampling: {
      temperature: dto.temperature,
      topP: dto.top_p,
      topK: dto.top_k === undefined ? undefined : dto.top_k < 0 ? 0 : dto.top_k,
      minP: dto.min_p,
      repetitionPenalty: dto.repetition_penalty,
      presencePenalty: dto.presence_penalty,
      frequencyPenalty: dto.frequency_penalty,
      logitBias: dto.logit_bias && toLogitBias(dto.logit_bias),
      seed: dto.seed === undefined ? undefined : dto.seed + choiceIndex,
      stop,
      stopTokenIds: dto.stop_token_ids,
      maxTokens,
      ignoreEos: dto.ignore_eos,
      skipSpecialTokens: dto.skip_special_tokens,
    },
    lvr: dto.lvr ? { strategy: dto.lvr.strategy, steps: dto.lvr.steps } : undefined,
    // The continued message is rendered as the generation prompt + its text (what HF's continue_final_message renders).
    addGenerationPrompt: dto.continue_final_message ? true : dto.add_generation_prompt,
    assistantPrefix,
    topLogprobs: dto.logprobs ? (dto.top_logprobs ?? 0) : undefined,
  };
  return stripUndefined(request);
}

function toLogitBias(bias: Record<string, number>): Record<number, number> {
  const out: Record<number, number> = {};
  for (const [id, b] of Object.entries(bias)) out[Number(id)] = b;
  return out;
}

function stripUndefined<T>(value: T): T {
  if (Array.isArray(value) || value === null || typeof value !== 'object' || value instanceof Uint8Array)
    return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = stripUndefined(v);
  return out as T;
}
