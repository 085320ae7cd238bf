import type { FinishReason, Usage } from '@lvr/engine';
import type { BackendRequest, TokenLogprob } from '../inference/backend';
import type { ApiMetrics } from '../metrics/api-metrics';
import type { ModelEntry } from '../registry/model-registry';
import { AbortedWhileQueuedError, type Admission } from '../scheduling/scheduler';
import type { LatentTraceEntry } from '../protocol/chat-completion.response';
import { toLogprobOut } from './logprobs';

/** What one choice produces, in order: visible pieces, then exactly one `final`. */
export type ChoiceEvent =
  | { kind: 'text'; text: string; logprobs?: TokenLogprob[] }
  | { kind: 'latent'; entry: LatentTraceEntry }
  | {
      kind: 'final';
      finishReason: FinishReason;
      stopReason: string | number | null;
      usage: Usage;
      latentSteps: number;
    };

export interface ChoiceContext {
  entry: ModelEntry;
  request: BackendRequest;
  admission: Admission;
  signal: AbortSignal;
  metrics: ApiMetrics;
  /** process.hrtime.bigint() at request arrival (TTFT and end-to-end latency start there). */
  arrivedAt: bigint;
  /** Called once per choice when the engine's iterator ended (or the choice never started). */
  onFinished?: (info: { finishReason: FinishReason; completionTokens: number; started: boolean }) => void;
}

const seconds = (from: bigint, to: bigint = process.hrtime.bigint()): number => Number(to - from) / 1e9;

/**
 * Runs one choice: waits for a generation slot, streams the engine's deltas, separates latent placeholders from
 * visible text, records metrics, and frees the slot when the engine stops (abort included).
 */
export async function* runChoice(ctx: ChoiceContext): AsyncGenerator<ChoiceEvent> {
  const model = ctx.entry.id;
  const labels = { model_name: model };
  const queuedAt = process.hrtime.bigint();
  let release: () => void;
  try {
    release = await ctx.admission.acquire(ctx.signal);
  } catch (error) {
    if (!(error instanceof AbortedWhileQueuedError)) throw error;
    ctx.metrics.requestSuccess.inc({ ...labels, finished_reason: 'abort' });
    ctx.onFinished?.({ finishReason: 'abort', completionTokens: 0, started: false });
    yield { kind: 'final', finishReason: 'abort', stopReason: null, usage: emptyUsage(), latentSteps: 0 };
    return;
  }
  ctx.metrics.queueTime.observe(labels, seconds(queuedAt));
  let tokenIndex = 0;
  let latentCount = 0;
  let lastTokenAt: bigint | undefined;
  let finished = false;
  let finishedInfo: { finishReason: FinishReason; completionTokens: number; started: boolean } | undefined;
  try {
    for await (const delta of ctx.entry.model.generate(ctx.request, { signal: ctx.signal })) {
      const n = delta.tokenIds.length;
      if (n > 0) {
        const now = process.hrtime.bigint();
        if (lastTokenAt === undefined)
          ctx.metrics.timeToFirstToken.observe(labels, seconds(ctx.arrivedAt, now));
        else ctx.metrics.interTokenLatency.observe(labels, seconds(lastTokenAt, now) / n);
        lastTokenAt = now;
      }
      if (delta.latent) {
        latentCount += 1;
        const entry: LatentTraceEntry = { index: tokenIndex, token_ids: delta.tokenIds, text: delta.text };
        if (delta.logprobs) entry.logprobs = delta.logprobs.map(toLogprobOut);
        yield { kind: 'latent', entry };
      } else if (delta.text.length > 0 || (delta.logprobs && delta.logprobs.length > 0)) {
        yield { kind: 'text', text: delta.text, logprobs: delta.logprobs };
      }
      tokenIndex += n;
      if (delta.finishReason) {
        const usage = delta.usage ?? {
          ...emptyUsage(),
          completionTokens: tokenIndex,
          totalTokens: tokenIndex,
          latentSteps: latentCount,
        };
        finished = true;
        ctx.metrics.promptTokens.inc(labels, usage.promptTokens);
        ctx.metrics.generationTokens.inc(labels, usage.completionTokens);
        ctx.metrics.latentSteps.inc(labels, usage.latentSteps);
        ctx.metrics.requestSuccess.inc({ ...labels, finished_reason: delta.finishReason });
        ctx.metrics.e2eLatency.observe(labels, seconds(ctx.arrivedAt));
        finishedInfo = {
          finishReason: delta.finishReason,
          completionTokens: usage.completionTokens,
          started: true,
        };
        yield {
          kind: 'final',
          finishReason: delta.finishReason,
          stopReason: delta.stopReason ?? null,
          usage,
          latentSteps: usage.latentSteps,
        };
        return;
      }
    }
    if (!finished) throw new Error('engine stream ended without a finish reason');
  } finally {
    // Reached after the engine's iterator has been closed, i.e. compute for this choice has stopped.
    release();
    if (finishedInfo) ctx.onFinished?.(finishedInfo);
  }
}

export function emptyUsage(): Usage {
  return { promptTokens: 0, completionTokens: 0, totalTokens: 0, latentSteps: 0, imageTokens: 0 };
}
