import { apiKeyMiddleware } from '@lvr/service-kit';
import { ApiError } from '../errors/api-error';

/** The shared API-key rule (libs/service-kit), failing through the OpenAI error path. */
export const apiKeyGuard = (keys: readonly string[]) =>
  apiKeyMiddleware(keys, (failure, _res, next) =>
    next(new ApiError(401, failure.message, { code: failure.code })),
  );
