import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { completionBudget, type FinishReason, type Usage } from '@lvr/engine';
import { API_CONFIG, type ApiConfig } from '../config/api-config';
import { Lifecycle } from '../common/lifecycle';
import { ApiError, type OpenAIErrorBody } from '../errors/api-error';
import { toErrorResponse } from '../errors/error-response';
import type { BackendRequest } from '../inference/backend';
import { JsonLogger, LOGGER } from '@lvr/service-kit';
import { ImageError, ImageLoader } from '../media/image-loader';
import { ApiMetrics } from '../metrics/api-metrics';
import type { ChatCompletionRequestDto } from '../protocol/chat-completion.request';
import type {
  ChatCompletionChoiceOut,
  ChatCompletionChunkOut,
  ChatCompletionOut,
  ChunkChoiceOut,
  ChoiceLogprobsOut,
  ChoiceLvrOut,
  LatentTraceEntry,
  TokenLogprobOut,
  UsageOut,
} from '../protocol/chat-completion.response';
import { validateChatRequest } from '../protocol/validate';
import { ModelEntry, ModelRegistry } from '../registry/model-registry';
import { Admission, OverloadedError, SequenceScheduler } from '../scheduling/scheduler';
import { runChoice, type ChoiceEvent } from './choice-runner';
import { GenerationEvents } from './generation-events';
import { askedMaxTokens, imageParts, toBackendRequest } from './request-mapper';
import { toLogprobOut } from './logprobs';

export { toLogprobOut };

/** A validated request holding its model lease and scheduler reservation; `dispose()` gives both back. */
export interface PreparedChat {
  id: string;
  created: number;
  requestId: string;
  dto: ChatCompletionRequestDto;
  entry: ModelEntry;
  admission: Admission;
  requests: BackendRequest[];
  arrivedAt: bigint;
  dispose(): void;
}

export interface TaggedEvent {
  choice: number;
  event: ChoiceEvent;
}

/** Serving logic of `/v1/chat/completions`: validation, model lookup, images, admission, choices, aggregation. */
@Injectable()
export class ChatService {
  constructor(
    @Inject(API_CONFIG) private readonly config: ApiConfig,
    @Inject(ModelRegistry) private readonly registry: ModelRegistry,
    @Inject(SequenceScheduler) private readonly scheduler: SequenceScheduler,
    @Inject(ImageLoader) private readonly images: ImageLoader,
    @Inject(ApiMetrics) private readonly metrics: ApiMetrics,
    @Inject(Lifecycle) private readonly lifecycle: Lifecycle,
    @Inject(GenerationEvents) private readonly events: GenerationEvents,
    @Inject(LOGGER) private readonly logger: JsonLogger,
  ) {}

  /** Everything that can fail with a 4xx before generation starts. */
  async prepare(
    body: unknown,
    requestId: string,
    arrivedAt: bigint,
    signal: AbortSignal,
  ): Promise<PreparedChat> {
    const { dto, parts } = validateChatRequest(body);
    if (this.lifecycle.draining) {
      this.metrics.requestsRejected.inc({ reason: 'draining' });
      throw new ApiError(503, 'The server is shutting down', {
        code: 'shutting_down',
        headers: { 'Retry-After': String(this.config.retryAfterSeconds) },
      });
    }
    // `<id>` = the current version; `<id>@<version>` = exactly that version (loaded on demand when published).
    const entry = await this.registry.resolve(dto.model);
    if (!entry) throw ApiError.modelNotFound(dto.model);
    const n = dto.n ?? 1;
    if (n > this.config.maxN) throw ApiError.badRequest(`n must be at most ${this.config.maxN}`, 'n');
    const asked = askedMaxTokens(dto, this.config);
    if (dto.logprobs && !entry.model.capabilities.logprobs) {
      throw ApiError.badRequest(
        `logprobs are not supported by model '${entry.id}'`,
        'logprobs',
        'unsupported',
      );
    }
    if ((dto.top_logprobs ?? 0) > this.config.maxTopLogprobs) {
      throw ApiError.badRequest(`top_logprobs must be at most ${this.config.maxTopLogprobs}`, 'top_logprobs');
    }
    const wanted = imageParts(parts);
    if (wanted.length > this.config.images.maxImagesPerRequest) {
      throw ApiError.badRequest(
        `${wanted.length} images in the request; the limit is ${this.config.images.maxImagesPerRequest}`,
        'messages',
        'too_many_images',
      );
    }
    let admission: Admission;
    try {
      admission = this.scheduler.admit(n);
    } catch (error) {
      if (error instanceof OverloadedError) {
        this.metrics.requestsRejected.inc({ reason: 'overloaded' });
        throw ApiError.overloaded(this.config.retryAfterSeconds);
      }
      throw error;
    }
    const release = entry.acquire();
    const dispose = (): void => {
      admission.close();
      release();
    };
    try {
      const loaded = await this.loadImages(wanted, signal);
      const probe = toBackendRequest(dto, parts, loaded, asked, 0);
      // The context limit, before any compute: the prompt counted with image tokens from the image headers.
      const maxTokens = completionBudget(
        await entry.model.countPromptTokens(probe),
        asked,
        entry.info.maxContextTokens,
        this.config.maxCompletionTokens,
      );
      const requests = Array.from({ length: n }, (_, i) =>
        toBackendRequest(dto, parts, loaded, maxTokens, i),
      );
      return {
        id: `chatcmpl-${randomUUID().replace(/-/g, '')}`,
        created: Math.floor(Date.now() / 1000),
        requestId,
        dto,
        entry,
        admission,
        requests,
        arrivedAt,
        dispose,
      };
    } catch (error) {
      dispose();
      throw error;
    }
  }

  private async loadImages(
    wanted: Array<{ url: string; param: string }>,
    signal: AbortSignal,
  ): Promise<Uint8Array[]> {
    let totalPixels = 0;
    const out: Uint8Array[] = [];
    // Sequential: bounded memory and connections per request; the count is capped above.
    for (const { url, param } of wanted) {
      try {
        const image = await this.images.load(url, signal);
        totalPixels += image.width * image.height;
        if (totalPixels > this.config.images.maxTotalPixels) {
          throw ApiError.badRequest(
            `the request's images exceed ${this.config.images.maxTotalPixels} pixels in total`,
            param,
            'image_too_large',
          );
        }
        out.push(image.bytes);
      } catch (error) {
        throw error instanceof ImageError ? error.at(param) : error;
      }
    }
    return out;
  }

  /**
   * Runs every choice concurrently and yields their events as they come. Any failure aborts the other choices.
   * The consumer must drain it or call return(); both free the slots.
   */
  async *events$(prepared: PreparedChat, clientSignal: AbortSignal): AsyncGenerator<TaggedEvent> {
    const internal = new AbortController();
    const onClientAbort = (): void => internal.abort();
    clientSignal.addEventListener('abort', onClientAbort, { once: true });
    if (clientSignal.aborted) internal.abort();
    const queue = new EventQueue<TaggedEvent>();
    let running = prepared.requests.length;
    prepared.requests.forEach((request, choice) => {
      void (async () => {
        try {
          for await (const event of runChoice({
            entry: prepared.entry,
            request,
            admission: prepared.admission,
            signal: internal.signal,
            metrics: this.metrics,
            arrivedAt: prepared.arrivedAt,
            onFinished: (info) =>
              this.events.emitFinished({
                requestId: prepared.requestId,
                model: prepared.entry.id,
                choice,
                ...info,
              }),
          })) {
            queue.push({ choice, event });
          }
        } catch (error) {
          internal.abort();
          queue.fail(error);
        } finally {
          running -= 1;
          if (running === 0) queue.end();
        }
      })();
    });
    try {
      yield* queue;
    } finally {
      internal.abort();
      clientSignal.removeEventListener('abort', onClientAbort);
      await queue.whenEnded();
      prepared.dispose();
    }
  }

  /** Non-streaming: aggregates all choices into one `chat.completion`. */
  async complete(prepared: PreparedChat, signal: AbortSignal): Promise<ChatCompletionOut> {
    const acc = prepared.requests.map(() => new ChoiceAccumulator());
    for await (const { choice, event } of this.events$(prepared, signal)) acc[choice].add(event);
    const usages = acc.map((a) => a.usage);
    return {
      id: prepared.id,
      object: 'chat.completion',
      created: prepared.created,
      model: prepared.dto.model,
      system_fingerprint: null,
      choices: acc.map((a, index) => a.toChoice(index, prepared.dto)),
      usage: toUsageOut(usages),
    };
  }

  /**
   * Streaming: waits for the first event so that a failure before anything was generated still gets a plain error
   * status, then returns the SSE frames. Per choice: a role chunk, content chunks, a final chunk with finish_reason;
   * then usage when asked; then `[DONE]`. A later failure becomes an error frame before `[DONE]`.
   */
  async stream(prepared: PreparedChat, signal: AbortSignal): Promise<AsyncGenerator<StreamFrame>> {
    const events = this.events$(prepared, signal);
    const first = await events.next();
    return this.frames(prepared, events, first);
  }

  private async *frames(
    prepared: PreparedChat,
    events: AsyncGenerator<TaggedEvent>,
    first: IteratorResult<TaggedEvent>,
  ): AsyncGenerator<StreamFrame> {
    const dto = prepared.dto;
    const includeUsage = dto.stream_options?.include_usage === true;
    const continuousUsage = dto.stream_options?.continuous_usage_stats === true;
    const accumulators = prepared.requests.map(() => new ChoiceAccumulator());
    const header = (): Omit<ChatCompletionChunkOut, 'choices'> => ({
      id: prepared.id,
      object: 'chat.completion.chunk',
      created: prepared.created,
      model: dto.model,
      system_fingerprint: null,
    });
    const chunk = (choice: ChunkChoiceOut): ChatCompletionChunkOut => ({
      ...header(),
      choices: [choice],
      ...(continuousUsage ? { usage: toUsageOut(accumulators.map((a) => a.usage)) } : {}),
    });
    try {
      for (let index = 0; index < prepared.requests.length; index++) {
        yield chunk({
          index,
          delta: { role: 'assistant', content: '' },
          logprobs: null,
          finish_reason: null,
        });
      }
      for (let next = first; !next.done; next = await events.next()) {
        const { choice, event } = next.value;
        const accumulator = accumulators[choice];
        accumulator.add(event);
        if (event.kind === 'text') {
          yield chunk({
            index: choice,
            delta: { content: event.text },
            logprobs: dto.logprobs ? { content: (event.logprobs ?? []).map(toLogprobOut) } : null,
            finish_reason: null,
          });
        } else if (event.kind === 'final') {
          yield chunk({
            index: choice,
            delta: {},
            logprobs: null,
            finish_reason: event.finishReason,
            stop_reason: event.stopReason,
            lvr: accumulator.lvrOut(dto),
          });
        }
      }
      if (includeUsage)
        yield { ...header(), choices: [], usage: toUsageOut(accumulators.map((a) => a.usage)) };
    } catch (error) {
      yield this.streamError(error, prepared.requestId);
    } finally {
      await events.return(undefined);
    }
    yield '[DONE]';
  }

  private streamError(error: unknown, requestId: string): OpenAIErrorBody {
    const answer = toErrorResponse(error, requestId);
    if (answer.unexpected) {
      const err = error instanceof Error ? error : new Error(String(error));
      this.logger.emit('error', 'stream failed', {
        request_id: requestId,
        error: err.message,
        stack: err.stack,
      });
    }
    return answer.body;
  }
}

/** One SSE `data:` payload of a streamed completion. */
export type StreamFrame = ChatCompletionChunkOut | OpenAIErrorBody | '[DONE]';

/** Collects one choice's events for the non-streaming response. */
export class ChoiceAccumulator {
  text = '';
  logprobs: TokenLogprobOut[] = [];
  trace: LatentTraceEntry[] = [];
  finishReason: FinishReason = 'stop';
  stopReason: string | number | null = null;
  usage: Usage | undefined;
  latentSteps = 0;

  add(event: ChoiceEvent): void {
    if (event.kind === 'text') {
      this.text += event.text;
      if (event.logprobs) this.logprobs.push(...event.logprobs.map(toLogprobOut));
    } else if (event.kind === 'latent') this.trace.push(event.entry);
    else {
      this.finishReason = event.finishReason;
      this.stopReason = event.stopReason;
      this.usage = event.usage;
      this.latentSteps = event.latentSteps;
    }
  }

  toChoice(index: number, dto: ChatCompletionRequestDto): ChatCompletionChoiceOut {
    return {
      index,
      message: { role: 'assistant', content: this.text, refusal: null },
      logprobs: dto.logprobs ? ({ content: this.logprobs } satisfies ChoiceLogprobsOut) : null,
      finish_reason: this.finishReason,
      stop_reason: this.stopReason,
      lvr: this.lvrOut(dto),
    };
  }

  lvrOut(dto: ChatCompletionRequestDto): ChoiceLvrOut {
    return { latent_steps: this.latentSteps, ...(dto.lvr?.return_trace ? { trace: this.trace } : {}) };
  }
}

/** Usage over all choices: the prompt once, completions summed (OpenAI semantics for n > 1). */
export function toUsageOut(usages: Array<Usage | undefined>): UsageOut {
  const present = usages.filter((u): u is Usage => !!u);
  const prompt = present.reduce((m, u) => Math.max(m, u.promptTokens), 0);
  const completion = present.reduce((s, u) => s + u.completionTokens, 0);
  const latent = present.reduce((s, u) => s + u.latentSteps, 0);
  const image = present.reduce((m, u) => Math.max(m, u.imageTokens), 0);
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: { cached_tokens: 0, image_tokens: image },
    completion_tokens_details: { reasoning_tokens: latent, latent_steps: latent },
  };
}

/** Single-consumer async queue fed by the choice tasks. */
class EventQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private error: unknown;
  private failed = false;
  private ended = false;
  private wake: (() => void) | undefined;
  private endWaiters: Array<() => void> = [];

  push(item: T): void {
    this.items.push(item);
    this.notify();
  }
  fail(error: unknown): void {
    if (!this.failed) {
      this.failed = true;
      this.error = error;
    }
    this.notify();
  }
  end(): void {
    this.ended = true;
    this.notify();
    for (const w of this.endWaiters) w();
    this.endWaiters = [];
  }
  whenEnded(): Promise<void> {
    return this.ended ? Promise.resolve() : new Promise((r) => this.endWaiters.push(r));
  }
  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      if (this.failed) throw this.error;
      if (this.items.length > 0) {
        yield this.items.shift()!;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((r) => (this.wake = r));
    }
  }
}
