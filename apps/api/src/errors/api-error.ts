/** OpenAI's error object: `{"error": {"message", "type", "param", "code"}}`. */
export interface OpenAIErrorBody {
  error: {
    message: string;
    type: string;
    param: string | null;
    code: string | null;
  };
}

/** Error types by status, following OpenAI's names where they exist. */
export function errorTypeForStatus(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 429) return 'rate_limit_error';
  if (status === 503) return 'service_unavailable_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

/** An error the API answers deliberately; everything else becomes a 500 without details. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly options: {
      param?: string | null;
      code?: string | null;
      type?: string;
      headers?: Record<string, string>;
    } = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }

  body(): OpenAIErrorBody {
    return {
      error: {
        message: this.message,
        type: this.options.type ?? errorTypeForStatus(this.status),
        param: this.options.param ?? null,
        code: this.options.code ?? null,
      },
    };
  }

  static badRequest(message: string, param?: string | null, code = 'invalid_value'): ApiError {
    return new ApiError(400, message, { param: param ?? null, code });
  }

  static modelNotFound(model: string): ApiError {
    return new ApiError(404, `The model '${model}' does not exist`, {
      param: 'model',
      code: 'model_not_found',
    });
  }

  static overloaded(retryAfterSeconds: number): ApiError {
    return new ApiError(429, 'The server is overloaded; retry later', {
      code: 'overloaded',
      headers: { 'Retry-After': String(retryAfterSeconds) },
    });
  }

  static unavailable(message: string): ApiError {
    return new ApiError(503, message, { code: 'unavailable' });
  }
}

export function internalErrorBody(requestId: string): OpenAIErrorBody {
  return {
    error: {
      message: `Internal server error (request id ${requestId})`,
      type: 'server_error',
      param: null,
      code: 'internal_error',
    },
  };
}
