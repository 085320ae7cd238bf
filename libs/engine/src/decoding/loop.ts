import { tokenLogprob } from '../sampling/logprobs';
import { pickToken, SeededRandom } from '../sampling/sampler';
import { StreamDecoder, Tokenizer } from '../tokenizer';
import type { FinishReason, GenerationDelta, SamplingParams, TokenLogprob, Usage } from '../types';
import { latentDistance, LvrConfig, LvrStateMachine } from './lvr-state';
import { StopStringMatcher } from './stop';

/** A hidden state in the model dtype: float32, or float16 bits. */
export type Hidden = Float32Array | Uint16Array;

export interface StepResult {
  logits: Float32Array;
  hidden: Hidden;
}

export type StepInput = { kind: 'token'; id: number } | { kind: 'latent' };

/** One forward pass at a time over a prompt already prefilled by `prefill`. */
export interface ModelStepper {
  prefill(): Promise<StepResult>;
  /** Runs one decode step; a latent input is the previous step's hidden state, kept by the stepper. */
  step(input: StepInput, position: number): Promise<StepResult>;
}

export interface LoopOptions {
  promptIds: readonly number[];
  ropeDelta: number;
  imageTokens: number;
  sampling: SamplingParams & { maxTokens: number };
  lvr: LvrConfig;
  eosIds: readonly number[];
  latentEndEmb?: Float32Array;
  tokenizer: Tokenizer;
  signal?: AbortSignal;
  /** Report log-probabilities with this many alternatives per token; undefined = none (no extra work). */
  topLogprobs?: number;
  toFloat32(h: Hidden): Float32Array;
  /** Called with each forward's hidden state (parity tests). */
  onHidden?(h: Hidden): void;
}

/**
 * The reference decoding loop (workers/lvr/decoding.py `generate`, LVR-SPEC Appendix B): pick, append (also
 * placeholders), update the LVR mode from this forward's input token, stop checks, then feed either the hidden state
 * or the picked token's embedding at position `cacheIndex + ropeDelta`.
 */
export async function* decodeLoop(stepper: ModelStepper, o: LoopOptions): AsyncGenerator<GenerationDelta> {
  const p = o.sampling;
  const rng = new SeededRandom(p.seed ?? Math.floor(Math.random() * 2 ** 32));
  const sm = new LvrStateMachine(o.lvr);
  const stopIds = new Set(p.ignoreEos ? [] : o.eosIds);
  for (const id of p.stopTokenIds ?? []) stopIds.add(id);
  const decodeOptions = { skipSpecialTokens: p.skipSpecialTokens ?? true };
  // Visible text only: latent placeholders never enter this decoder or the stop matcher.
  const decoder = new StreamDecoder(o.tokenizer, decodeOptions);
  const stops = new StopStringMatcher(p.stop ?? []);
  const flushVisible = (): string => stops.push(decoder.flush()).text + stops.flush();
  const history: number[] = [...o.promptIds];
  const out: number[] = [];
  /** Occurrences of each generated id (placeholders included), for presence/frequency penalties. */
  const generatedCounts = new Map<number, number>();
  let latentSteps = 0;
  let tokIn = o.promptIds[o.promptIds.length - 1];
  let hPrev: Hidden | undefined;
  const usage = (): Usage => ({
    promptTokens: o.promptIds.length,
    completionTokens: out.length,
    totalTokens: o.promptIds.length + out.length,
    latentSteps,
    imageTokens: o.imageTokens,
  });
  if (o.signal?.aborted) {
    yield { text: '', tokenIds: [], latent: false, finishReason: 'abort', usage: usage() };
    return;
  }
  let res = await stepper.prefill();
  o.onHidden?.(res.hidden);
  for (;;) {
    // pickToken penalises the logits in place; logprobs use the raw distribution, so keep a copy only when asked.
    const raw = o.topLogprobs === undefined ? undefined : res.logits.slice();
    const tok = pickToken(res.logits, history, p, rng, generatedCounts);
    const logprobs: TokenLogprob[] | undefined = raw && [tokenLogprob(o.tokenizer, raw, tok, o.topLogprobs!)];
    out.push(tok);
    history.push(tok);
    generatedCounts.set(tok, (generatedCounts.get(tok) ?? 0) + 1);
    const end =
      o.lvr.strategy === 'latent' && hPrev !== undefined && o.latentEndEmb !== undefined
        ? latentDistance(o.lvr.criterion, o.toFloat32(hPrev), o.latentEndEmb) < o.lvr.threshold
        : false;
    const mode = sm.update(tokIn, tok, end);

    let finish: FinishReason | null = null;
    let stopReason: string | number | undefined;
    if (!mode && stopIds.has(tok)) {
      finish = 'stop';
      stopReason = tok;
    } else if (out.length >= p.maxTokens && (!mode || !o.lvr.upstreamCompat)) finish = 'length';
    if (mode) {
      // A latent placeholder: decoded on its own, never through the visible text's UTF-8 decoder or stop matcher,
      // so its bytes cannot complete (or break) a visible character and its text cannot match a stop string.
      if (finish === null && o.signal?.aborted) finish = 'abort';
      yield {
        text: o.tokenizer.decode([tok], decodeOptions),
        tokenIds: [tok],
        latent: true,
        finishReason: null,
        ...(logprobs && { logprobs }),
      };
      if (finish !== null) {
        yield { text: flushVisible(), tokenIds: [], latent: false, finishReason: finish, usage: usage() };
        return;
      }
    } else {
      const piece = stops.push(decoder.push(tok));
      let text = piece.text;
      if (piece.stop !== undefined && finish === null) {
        finish = 'stop';
        stopReason = piece.stop;
      } else if (finish !== null && piece.stop === undefined) text += flushVisible();
      if (finish === null && o.signal?.aborted) finish = 'abort';
      if (finish !== null) {
        yield {
          text,
          tokenIds: [tok],
          latent: false,
          finishReason: finish,
          stopReason,
          usage: usage(),
          ...(logprobs && { logprobs }),
        };
        return;
      }
      yield { text, tokenIds: [tok], latent: false, finishReason: null, ...(logprobs && { logprobs }) };
    }

    hPrev = res.hidden;
    const position = o.promptIds.length + out.length - 1 + o.ropeDelta;
    res = await stepper.step(mode ? { kind: 'latent' } : { kind: 'token', id: tok }, position);
    if (mode) latentSteps++;
    o.onHidden?.(res.hidden);
    tokIn = tok;
    if (o.signal?.aborted) {
      yield { text: '', tokenIds: [], latent: false, finishReason: 'abort', usage: usage() };
      return;
    }
  }
}
