import { ArgumentsHost, Catch, ExceptionFilter, HttpException } from '@nestjs/common';
import type { Request, Response } from 'express';
import { requestIdOf } from '../common/request-context';
import type { JsonLogger } from '../logging/json-logger';
import { ApiError, internalErrorBody, type OpenAIErrorBody, errorTypeForStatus } from './api-error';

interface Answer {
  status: number;
  body: OpenAIErrorBody;
  headers?: Record<string, string>;
}

/** Errors raised by Express' body parser carry `type`, `status` and `expose`. */
interface HttpLikeError {
  type?: string;
  status?: number;
  statusCode?: number;
  expose?: boolean;
  message?: string;
}

const BODY_PARSER_ANSWERS: Record<string, { status: number; message: string; code: string }> = {
  'entity.too.large': { status: 413, message: 'Request body too large', code: 'request_too_large' },
  'entity.parse.failed': { status: 400, message: 'Request body is not valid JSON', code: 'invalid_json' },
  'entity.verify.failed': { status: 400, message: 'Request body verification failed', code: 'invalid_body' },
  'encoding.unsupported': {
    status: 415,
    message: 'Unsupported content encoding',
    code: 'unsupported_encoding',
  },
  'charset.unsupported': { status: 415, message: 'Unsupported charset', code: 'unsupported_charset' },
  'request.aborted': { status: 400, message: 'Request aborted', code: 'request_aborted' },
  'request.size.invalid': {
    status: 400,
    message: 'Request size did not match Content-Length',
    code: 'invalid_body',
  },
  'stream.encoding.set': { status: 500, message: 'Internal server error', code: 'internal_error' },
  'parameters.too.many': { status: 413, message: 'Too many parameters', code: 'request_too_large' },
};

/** Express body-parser errors (they carry a `type`) as API errors; undefined for anything else. */
export function bodyParserError(error: unknown): ApiError | undefined {
  const type = (error as HttpLikeError | undefined)?.type;
  if (!type || !Object.prototype.hasOwnProperty.call(BODY_PARSER_ANSWERS, type)) return undefined;
  const known = BODY_PARSER_ANSWERS[type];
  if (known.status >= 500) return undefined;
  return new ApiError(known.status, known.message, { code: known.code });
}

function simple(status: number, message: string, code: string | null, param: string | null = null): Answer {
  return { status, body: { error: { message, type: errorTypeForStatus(status), param, code } } };
}

/** Maps any thrown value to an OpenAI error object. Unknown errors become a 500 naming only the request id. */
export function toAnswer(exception: unknown, requestId: string): { answer: Answer; unexpected: boolean } {
  if (exception instanceof ApiError) {
    return {
      answer: { status: exception.status, body: exception.body(), headers: exception.options.headers },
      unexpected: false,
    };
  }
  if (exception instanceof HttpException) {
    const status = exception.getStatus();
    if (status >= 500) return { answer: { status, body: internalErrorBody(requestId) }, unexpected: true };
    const response = exception.getResponse();
    let message = exception.message;
    if (typeof response === 'object' && response && 'message' in response) {
      const m = (response as { message: unknown }).message;
      message = Array.isArray(m) ? m.join('; ') : String(m);
    }
    const code = status === 404 ? 'not_found' : status === 405 ? 'method_not_allowed' : null;
    return { answer: simple(status, message, code), unexpected: false };
  }
  const fromParser = bodyParserError(exception);
  if (fromParser)
    return { answer: { status: fromParser.status, body: fromParser.body() }, unexpected: false };
  const like = (typeof exception === 'object' && exception !== null ? exception : {}) as HttpLikeError;
  const status = like.status ?? like.statusCode;
  if (like.expose === true && typeof status === 'number' && status >= 400 && status < 500) {
    return { answer: simple(status, String(like.message ?? 'Bad request'), null), unexpected: false };
  }
  return { answer: { status: 500, body: internalErrorBody(requestId) }, unexpected: true };
}

@Catch()
export class OpenAIExceptionFilter implements ExceptionFilter {
  constructor(private readonly logger: JsonLogger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const req = ctx.getRequest<Request>();
    const res = ctx.getResponse<Response>();
    const requestId = requestIdOf(req);
    const { answer, unexpected } = toAnswer(exception, requestId);
    if (unexpected) {
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
      // A stream already started; the streaming code reports its own errors. Just close the response.
      if (!res.writableEnded) res.end();
      return;
    }
    for (const [k, v] of Object.entries(answer.headers ?? {})) res.setHeader(k, v);
    res.status(answer.status).json(answer.body);
  }
}
