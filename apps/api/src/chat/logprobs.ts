import type { TokenLogprob } from '../inference/backend';
import type { TokenLogprobOut } from '../protocol/chat-completion.response';

/** A backend token log-probability in OpenAI's `choices[].logprobs.content[]` shape. */
export function toLogprobOut(l: TokenLogprob): TokenLogprobOut {
  return {
    token: l.token,
    logprob: l.logprob,
    bytes: l.bytes,
    top_logprobs: l.topLogprobs.map((t) => ({ token: t.token, logprob: t.logprob, bytes: t.bytes })),
  };
}
