import { ArgumentsHost, Catch, ExceptionFilter } from '@nestjs/common';
import type { Request, Response } from 'express';
import { requestIdOf } from '../common/request-context';
import type { JsonLogger } from '@lvr/service-kit';
import { toErrorResponse } from './error-response';

/** Every error that leaves a handler before its response started, answered as an OpenAI error object. */
@Catch()
export class OpenAIExceptionFilter implements ExceptionFilter {
  constructor(private readonly logger: JsonLogger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const req = ctx.getRequest<Request>();
    const res = ctx.getResponse<Response>();
    const requestId = requestIdOf(req);
    const answer = toErrorResponse(exception, requestId);
    if (answer.unexpected) {
      const err = exception instanceof Error ? exception : new Error(String(exception));
      this.logger.emit('error', 'unhandled error', {
        request_id: requestId,
        path: req?.path,
        error: err.message,
        stack: err.stack,
      });
    }
    if (!res || typeof res.status !== 'function') return;
    if (res.headersSent) {
      // A stream already started and reports its own errors as frames; only close the response.
      if (!res.writableEnded) res.end();
      return;
    }
    for (const [name, value] of Object.entries(answer.headers ?? {})) res.setHeader(name, value);
    res.status(answer.status).json(answer.body);
  }
}
