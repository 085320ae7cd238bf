import { tokenLogprob } from '../sampling/logprobs';
import { MAX_RUN_AHEAD_STEPS, type TopCandidates } from '../runtime/protocol';
import { greedyFromTop, pickToken, SeededRandom } from '../sampling/sampler';
import { StreamDecoder, Tokenizer } from '../tokenizer';
import type { FinishReason, GenerationDelta, SamplingParams, TokenLogprob, Usage } from '../types';
import { LvrConfig, LvrStateMachine } from './lvr-state';
import { StopStringMatcher } from './stop';

/** A hidden state in the model dtype: float32, or float16 bits. */
export type Hidden = Float32Array | Uint16Array;

/** A forward's outputs: `logits` may be left out when `top` holds the row's top candidates (`StepRow.needsLogits`). */
export interface StepResult {
  logits?: Float32Array;
  hidden: Hidden;
  top?: TopCandidates;
}

/** A latent input's `placeholder`: the token picked at the forward before, counted as generated but not fed. */
export type StepInput = { kind: 'token'; id: number } | { kind: 'latent'; placeholder: number };

/** One forward pass at a time over a prompt already prefilled by `prefill`. */
export interface ModelStepper {
  prefill(): Promise<StepResult>;
  /**
   * Runs one decode step; a latent input is the previous step's hidden state, kept by the stepper. `next`: the kinds
   * of the steps after this one, as far as they are known before this step's pick (lets a stepper start them early).
   */
  step(input: StepInput, position: number, next?: Array<StepInput['kind']>): Promise<StepResult>;
  /** The whole logits of the last step, when it left them out and its top candidates did not decide the token. */
  lastLogits?(): Promise<Float32Array>;
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

/** The forward's logits, read from the stepper when the step left them out. */
async function wholeLogits(stepper: ModelStepper, forward: StepResult): Promise<Float32Array> {
  if (forward.logits) return forward.logits;
  if (!stepper.lastLogits) throw new Error('the step left its logits out and the stepper cannot read them');
  return stepper.lastLogits();
}

/**
 * The reference decoding loop (workers/lvr/decoding.py `generate`, LVR-SPEC Appendix B): pick, append (also
 * placeholders), update the LVR mode from this forward's input token, stop checks, then feed either the hidden state
 * or the picked token's embedding at position `cacheIndex + ropeDelta`.
 */
export async function* decodeLoop(
  stepper: ModelStepper,
  options: LoopOptions,
): AsyncGenerator<GenerationDelta> {
  const sampling = options.sampling;
  const rng = new SeededRandom(sampling.seed ?? Math.floor(Math.random() * 2 ** 32));
  const lvrState = new LvrStateMachine(options.lvr, options.latentEndEmb);
  const stopIds = new Set(sampling.ignoreEos ? [] : options.eosIds);
  for (const id of sampling.stopTokenIds ?? []) stopIds.add(id);
  const decodeOptions = { skipSpecialTokens: sampling.skipSpecialTokens ?? true };
  // Visible text only: latent placeholders never enter this decoder or the stop matcher.
  const decoder = new StreamDecoder(options.tokenizer, decodeOptions);
  const stops = new StopStringMatcher(sampling.stop ?? []);
  const flushVisible = (): string => stops.push(decoder.flush()).text + stops.flush();
  const history: number[] = [...options.promptIds];
  const out: number[] = [];
  /** Occurrences of each generated id (placeholders included), for presence/frequency penalties. */
  const generatedCounts = new Map<number, number>();
  let latentSteps = 0;
  let tokIn = options.promptIds[options.promptIds.length - 1];
  // The latent fed into the next forward (this forward's hidden state), as float32: only the latent strategy looks
  // at it, so the float16 conversion is skipped otherwise.
  const latentOf = (hidden: Hidden) =>
    options.lvr.strategy === 'latent' ? options.toFloat32(hidden) : undefined;
  let fedLatent: Float32Array | undefined;
  const usage = (): Usage => ({
    promptTokens: options.promptIds.length,
    completionTokens: out.length,
    totalTokens: options.promptIds.length + out.length,
    latentSteps,
    imageTokens: options.imageTokens,
  });
  if (options.signal?.aborted) {
    yield { text: '', tokenIds: [], latent: false, finishReason: 'abort', usage: usage() };
    return;
  }
  let forward = await stepper.prefill();
  options.onHidden?.(forward.hidden);
  for (;;) {
    // pickToken penalises the logits in place; logprobs use the raw distribution, so keep a copy only when asked.
    const raw = options.topLogprobs === undefined ? undefined : (await wholeLogits(stepper, forward)).slice();
    const tok =
      (forward.logits === undefined && forward.top
        ? greedyFromTop(forward.top.ids, forward.top.values, history, sampling, generatedCounts)
        : undefined) ??
      pickToken(await wholeLogits(stepper, forward), history, sampling, rng, generatedCounts);
    const logprobs: TokenLogprob[] | undefined = raw && [
      tokenLogprob(options.tokenizer, raw, tok, options.topLogprobs!),
    ];
    out.push(tok);
    history.push(tok);
    generatedCounts.set(tok, (generatedCounts.get(tok) ?? 0) + 1);
    const mode = lvrState.afterForward(tokIn, tok, fedLatent);

    let finish: FinishReason | null = null;
    let stopReason: string | number | undefined;
    if (!mode && stopIds.has(tok)) {
      finish = 'stop';
      stopReason = tok;
    } else if (out.length >= sampling.maxTokens && (!mode || !options.lvr.upstreamCompat)) finish = 'length';
    if (mode) {
      // A latent placeholder: decoded on its own, never through the visible text's UTF-8 decoder or stop matcher,
      // so its bytes cannot complete (or break) a visible character and its text cannot match a stop string.
      if (finish === null && options.signal?.aborted) finish = 'abort';
      yield {
        text: options.tokenizer.decode([tok], decodeOptions),
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
      if (finish === null && options.signal?.aborted) finish = 'abort';
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

    fedLatent = latentOf(forward.hidden);
    const next = lvrState.forecast(tok, fedLatent, MAX_RUN_AHEAD_STEPS);
    const position = options.promptIds.length + out.length - 1 + options.ropeDelta;
    forward = await stepper.step(
      mode ? { kind: 'latent', placeholder: tok } : { kind: 'token', id: tok },
      position,
      next.length ? next.map((latent) => (latent ? 'latent' : 'token')) : undefined,
    );
    if (mode) latentSteps++;
    options.onHidden?.(forward.hidden);
    tokIn = tok;
    if (options.signal?.aborted) {
      yield { text: '', tokenIds: [], latent: false, finishReason: 'abort', usage: usage() };
      return;
    }
  }
}
