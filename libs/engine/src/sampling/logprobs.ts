import type { Tokenizer } from '../tokenizer';
import type { TokenAlternative, TokenLogprob } from '../types';

/** Largest `topLogprobs` the engine accepts (OpenAI's and vLLM's default cap). */
export const MAX_TOP_LOGPROBS = 20;

export interface IdLogprob {
  id: number;
  logprob: number;
}

/**
 * log-softmax over `logits` (float64 accumulation): `logSumExp` plus the `k` most likely ids, most likely first.
 * Ties keep the lower id first. O(V·k) with k ≤ 20, no full sort.
 */
export function logSoftmaxTopK(logits: Float32Array, k: number): { logSumExp: number; top: IdLogprob[] } {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const logSumExp = max + Math.log(sum);
  const ids: number[] = [];
  for (let i = 0; i < logits.length && k > 0; i++) {
    const v = logits[i];
    if (ids.length === k && !(v > logits[ids[k - 1]])) continue;
    let at = ids.length;
    while (at > 0 && v > logits[ids[at - 1]]) at--;
    ids.splice(at, 0, i);
    if (ids.length > k) ids.pop();
  }
  return { logSumExp, top: ids.map((id) => ({ id, logprob: logits[id] - logSumExp })) };
}

/** Token text (decoded alone, special tokens kept) and raw bytes of one id, as OpenAI reports them. */
export function describeToken(tokenizer: Tokenizer, id: number, logprob: number): TokenAlternative {
  return {
    tokenId: id,
    token: tokenizer.decode([id]),
    bytes: Array.from(tokenizer.tokenBytes(id)),
    logprob,
  };
}

/**
 * Log-probability of `chosen` and the `k` most likely alternatives under the raw model distribution (log-softmax of
 * the logits before repetition penalty, temperature and top-k/top-p/min-p): vLLM's default `raw_logprobs` mode.
 * `logits` must be the unprocessed logits of the forward `chosen` was picked from.
 */
export function tokenLogprob(
  tokenizer: Tokenizer,
  logits: Float32Array,
  chosen: number,
  k: number,
): TokenLogprob {
  const { logSumExp, top } = logSoftmaxTopK(logits, k);
  return {
    ...describeToken(tokenizer, chosen, logits[chosen] - logSumExp),
    topLogprobs: top.map((t) => describeToken(tokenizer, t.id, t.logprob)),
  };
}
