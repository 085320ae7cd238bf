import { Controller, HttpCode, Inject, Post, Req, Res } from '@nestjs/common';
import { ApiBody, ApiExtraModels, ApiOkResponse, getSchemaPath } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { requestIdOf, type RequestWithId } from '../common/request-context';
import { JsonLogger, LOGGER } from '@lvr/service-kit';
import { ApiOperationDoc } from '../openapi/openapi';
import {
  ChatCompletionChunkOut,
  ChatCompletionOut,
  RESPONSE_MODELS,
} from '../protocol/chat-completion.response';
import { ChatService } from './chat.service';
import { SseWriter } from './sse-writer';

/** `POST /v1/chat/completions`: the service produces the answer; this only writes it (JSON or SSE frames). */
@ApiExtraModels(...RESPONSE_MODELS)
@Controller('v1/chat')
export class ChatController {
  constructor(
    @Inject(ChatService) private readonly chat: ChatService,
    @Inject(LOGGER) private readonly logger: JsonLogger,
  ) {}

  @Post('completions')
  @HttpCode(200)
  @ApiOperationDoc('createChatCompletion', [400, 401, 404, 413, 415, 429, 500, 503])
  @ApiBody({ required: true, schema: { $ref: '#/components/schemas/ChatCompletionRequest' } })
  @ApiOkResponse({
    description: 'A `chat.completion`, or server-sent `chat.completion.chunk` events ending with `[DONE]`',
    content: {
      'application/json': { schema: { $ref: getSchemaPath(ChatCompletionOut) } },
      'text/event-stream': {
        schema: {
          type: 'string',
          description: `\`data: <${ChatCompletionChunkOut.name}>\` frames, then \`data: [DONE]\``,
        },
      },
    },
  })
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
    if (!prepared.dto.stream) {
      const completion = await this.chat.complete(prepared, abort.signal);
      if (!abort.signal.aborted) res.status(200).json(completion);
      return;
    }
    const frames = await this.chat.stream(prepared, abort.signal);
    const sse = new SseWriter(res);
    sse.open();
    for await (const frame of frames) {
      await sse.data(frame);
      if (sse.closed) break;
    }
    sse.end();
  }
}
