import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';

export interface ApiKeyFailure {
  code: 'missing_api_key' | 'invalid_api_key';
  message: string;
}

const digest = (value: string): Buffer => createHash('sha256').update(value, 'utf8').digest();

/**
 * `Authorization: Bearer <key>` on `/v1/*` only (health, metrics and the OpenAPI document stay open for probes,
 * scrapers and clients). Keys are compared as SHA-256 digests in constant time; with no keys every request passes.
 * `reject` answers a failed check in the service's own error style.
 */
export function apiKeyMiddleware(
  keys: readonly string[],
  reject: (failure: ApiKeyFailure, res: Response, next: NextFunction) => void,
) {
  const digests = keys.map(digest);
  return (req: Request, res: Response, next: NextFunction): void => {
    if (digests.length === 0 || req.method === 'OPTIONS' || !isV1(req.path)) return next();
    const header = req.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!match)
      return reject(
        { code: 'missing_api_key', message: 'Missing API key: send Authorization: Bearer <key>' },
        res,
        next,
      );
    const candidate = digest(match[1]);
    let ok = false;
    for (const d of digests) ok = timingSafeEqual(d, candidate) || ok;
    if (!ok) return reject({ code: 'invalid_api_key', message: 'Incorrect API key provided' }, res, next);
    next();
  };
}

/** Express routes case-insensitively and tolerates repeated slashes, so normalise before matching. */
function isV1(p: string): boolean {
  const n = p.toLowerCase().replace(/\/+/g, '/');
  return n === '/v1' || n.startsWith('/v1/');
}
