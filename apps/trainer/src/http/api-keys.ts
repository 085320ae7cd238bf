import { apiKeyMiddleware } from '@lvr/service-kit';

/** The API's key rule (libs/service-kit) on the operator routes, answered with the same error object. */
export const apiKeyGuard = (keys: readonly string[]) =>
  apiKeyMiddleware(keys, (failure, res) => {
    res.status(401).json({
      error: { message: failure.message, type: 'invalid_request_error', param: null, code: failure.code },
    });
  });
