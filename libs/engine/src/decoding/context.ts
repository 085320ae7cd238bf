import { RequestError } from '../errors';

/** Max tokens vLLM uses when a model configuration names no context length (Qwen2.5-VL's own value). */
export const DEFAULT_MAX_MODEL_LEN = 32768;

/**
 * The context-length rule, checked before any compute (vLLM's wording and arithmetic): a completion limit the client
 * asked for must fit next to the prompt; without one, the completion gets the default capped by what is left, and a
 * prompt that leaves nothing is refused. Returns the completion limit to decode with.
 */
export function completionBudget(
  promptTokens: number,
  askedMaxTokens: number | undefined,
  maxModelLen: number,
  defaultMaxTokens: number,
): number {
  if (askedMaxTokens === undefined) {
    if (promptTokens >= maxModelLen) {
      throw new RequestError(
        `This model's maximum context length is ${maxModelLen} tokens. However, you requested ` +
          `${promptTokens} tokens in the messages, Please reduce the length of the messages.`,
        'messages',
        'context_length_exceeded',
      );
    }
    return Math.min(defaultMaxTokens, maxModelLen - promptTokens);
  }
  if (promptTokens + askedMaxTokens > maxModelLen) {
    throw new RequestError(
      `This model's maximum context length is ${maxModelLen} tokens. However, you requested ` +
        `${promptTokens + askedMaxTokens} tokens (${promptTokens} in the messages, ${askedMaxTokens} in the ` +
        `completion). Please reduce the length of the messages or completion.`,
      'messages',
      'context_length_exceeded',
    );
  }
  return askedMaxTokens;
}
