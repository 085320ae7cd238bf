import { HttpException } from '@nestjs/common';
import { RequestError } from '@lvr/engine';
import { apiParamOf } from '../chat/request-mapper';
import { ImageError } from '../media/image-loader';
import { ApiError, errorTypeForStatus, internalErrorBody, type OpenAIErrorBody } from './api-error';

/** The answer to a failed request: an OpenAI error object, its status and headers. */
export interface ErrorResponse {
  status: number;
  body: OpenAIErrorBody;
  headers?: Record<string, string>;
  /** True when nothing deliberate produced the error: the caller logs it, the client sees only the request id. */
  unexpected: boolean;
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

/**
 * The one translation of a thrown value into the OpenAI error the client sees, for plain responses (the exception
 * filter) and for error frames inside a stream alike. Errors of the lower layers (the engine's request errors, image
 * loading) become 400s here, so those layers never need to know about HTTP.
 */
export function toErrorResponse(exception: unknown, requestId: string): ErrorResponse {
  const deliberate = asApiError(exception);
  if (deliberate) {
    return {
      status: deliberate.status,
      body: deliberate.body(),
      headers: deliberate.options.headers,
      unexpected: false,
    };
  }
  if (exception instanceof HttpException) {
    const status = exception.getStatus();
    if (status >= 500) return { status, body: internalErrorBody(requestId), unexpected: true };
    const response = exception.getResponse();
    let message = exception.message;
    if (typeof response === 'object' && response && 'message' in response) {
      const detail = (response as { message: unknown }).message;
      message = Array.isArray(detail) ? detail.join('; ') : String(detail);
    }
    const code = status === 404 ? 'not_found' : status === 405 ? 'method_not_allowed' : null;
    return { status, body: simpleBody(status, message, code), unexpected: false };
  }
  const like = (typeof exception === 'object' && exception !== null ? exception : {}) as HttpLikeError;
  const status = like.status ?? like.statusCode;
  if (like.expose === true && typeof status === 'number' && status >= 400 && status < 500) {
    return {
      status,
      body: simpleBody(status, String(like.message ?? 'Bad request'), null),
      unexpected: false,
    };
  }
  return { status: 500, body: internalErrorBody(requestId), unexpected: true };
}

/** The errors the API answers on purpose, whichever layer raised them. */
function asApiError(exception: unknown): ApiError | undefined {
  if (exception instanceof ApiError) return exception;
  if (exception instanceof RequestError)
    return ApiError.badRequest(exception.message, apiParamOf(exception.field), exception.code);
  if (exception instanceof ImageError)
    return ApiError.badRequest(exception.message, exception.param ?? null, exception.code);
  return bodyParserError(exception);
}

function simpleBody(status: number, message: string, code: string | null): OpenAIErrorBody {
  return { error: { message, type: errorTypeForStatus(status), param: null, code } };
}
