import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { ApiError } from '../errors/api-error';

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/**
 * `Authorization: Bearer <key>` on `/v1/*` only (health and metrics stay open for probes and scrapers).
 * Keys are compared as SHA-256 digests in constant time; with no keys configured every request passes.
 */
export function apiKeyMiddleware(keys: readonly string[]) {
  const digests = keys.map(digest);
  return (req: Request, _res: Response, next: NextFunction): void => {
    if (digests.length === 0 || req.method === 'OPTIONS' || !isV1(req.path)) return next();
    const header = req.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!match) {
      return next(
        new ApiError(401, 'Missing API key: send Authorization: Bearer <key>', { code: 'missing_api_key' }),
      );
    }
    const candidate = digest(match[1]);
    let ok = false;
    for (const d of digests) ok = timingSafeEqual(d, candidate) || ok;
    if (!ok) return next(new ApiError(401, 'Incorrect API key provided', { code: 'invalid_api_key' }));
    next();
  };
}

/** Express routes case-insensitively and tolerates repeated slashes, so normalise before matching. */
function isV1(p: string): boolean {
  const n = p.toLowerCase().replace(/\/+/g, '/');
  return n === '/v1' || n.startsWith('/v1/');
}
