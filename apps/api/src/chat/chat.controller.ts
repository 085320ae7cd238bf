import { Controller, HttpCode, Inject, Post, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import { requestIdOf, type RequestWithId } from '../common/request-context';
import { ApiError, internalErrorBody } from '../errors/api-error';
import { toAnswer } from '../errors/openai-exception.filter';
import { JsonLogger, LOGGER } from '../logging/json-logger';
import type { ChatCompletionChunkOut, ChunkChoiceOut } from '../protocol/chat-completion.response';
import {
  ChatService,
  ChoiceAccumulator,
  toLogprobOut,
  toUsageOut,
  type PreparedChat,
  type TaggedEvent,
} from './chat.service';
import { SseWriter } from './sse-writer';

@Controller('v1/chat')
export class ChatController {
  constructor(
    @Inject(ChatService) private readonly chat: ChatService,
    @Inject(LOGGER) private readonly logger: JsonLogger,
  ) {}

  @Post('completions')
  @HttpCode(200)
  async create(@Req() req: Request, @Res() res: Response): Promise<void> {
    const requestId = requestIdOf(req);
    const arrivedAt = (req as RequestWithId).startedAt ?? process.hrtime.bigint();
    // A closed connection before the response finished means the client went away: stop generating.
    const abort = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    const prepared = await this.chat.prepare(req.body, requestId, arrivedAt, abort.signal);
    this.logger.info('chat completion', {
      request_id: requestId,
      model: prepared.entry.id,
      n: prepared.requests.length,
      stream: !!prepared.dto.stream,
    });
    if (prepared.dto.stream) return this.stream(prepared, res, abort.signal);
    try {
      const out = await this.chat.complete(prepared, abort.signal);
      if (!abort.signal.aborted) res.status(200).json(out);
    } catch (error) {
      throw ChatService.toApiError(error);
    }
  }

  /**
   * SSE: errors before the first event still get a normal status code; later ones become an error frame.
   * Order per choice: role chunk, content chunks, a final chunk with finish_reason; then usage; then [DONE].
   */
  private async stream(prepared: PreparedChat, res: Response, signal: AbortSignal): Promise<void> {
    const dto = prepared.dto;
    const includeUsage = dto.stream_options?.include_usage === true;
    const continuousUsage = dto.stream_options?.continuous_usage_stats === true;
    const events = this.chat.events$(prepared, signal);
    let first: IteratorResult<TaggedEvent>;
    try {
      first = await events.next();
    } catch (error) {
      throw ChatService.toApiError(error);
    }
    const sse = new SseWriter(res);
    sse.open();
    const base = (): Omit<ChatCompletionChunkOut, 'choices'> => ({
      id: prepared.id,
      object: 'chat.completion.chunk',
      created: prepared.created,
      model: prepared.dto.model,
      system_fingerprint: null,
    });
    const acc = prepared.requests.map(() => new ChoiceAccumulator());
    const chunk = (choice: ChunkChoiceOut): ChatCompletionChunkOut => ({
      ...base(),
      choices: [choice],
      ...(continuousUsage ? { usage: toUsageOut(acc.map((a) => a.usage)) } : {}),
    });
    for (let i = 0; i < prepared.requests.length; i++) {
      await sse.data(
        chunk({ index: i, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }),
      );
    }
    try {
      let next = first;
      while (!next.done) {
        const { choice, event } = next.value;
        acc[choice].add(event);
        if (event.kind === 'text') {
          await sse.data(
            chunk({
              index: choice,
              delta: { content: event.text },
              logprobs: dto.logprobs ? { content: (event.logprobs ?? []).map(toLogprobOut) } : null,
              finish_reason: null,
            }),
          );
        } else if (event.kind === 'final') {
          const a = acc[choice];
          await sse.data(
            chunk({
              index: choice,
              delta: {},
              logprobs: null,
              finish_reason: event.finishReason,
              stop_reason: event.stopReason,
              lvr: { latent_steps: a.latentSteps, ...(dto.lvr?.return_trace ? { trace: a.trace } : {}) },
            }),
          );
        }
        if (sse.closed) break;
        next = await events.next();
      }
      if (includeUsage && !sse.closed)
        await sse.data({ ...base(), choices: [], usage: toUsageOut(acc.map((a) => a.usage)) });
    } catch (error) {
      const mapped = ChatService.toApiError(error);
      const { answer, unexpected } = toAnswer(mapped, prepared.requestId);
      if (unexpected) {
        const err = error instanceof Error ? error : new Error(String(error));
        this.logger.emit('error', 'stream failed', {
          request_id: prepared.requestId,
          error: err.message,
          stack: err.stack,
        });
      }
      await sse.data(mapped instanceof ApiError ? answer.body : internalErrorBody(prepared.requestId));
    } finally {
      await events.return(undefined);
    }
    await sse.data('[DONE]');
    sse.end();
  }
}
