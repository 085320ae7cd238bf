import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';

const digest = (value: string): Buffer => createHash('sha256').update(value, 'utf8').digest();

function unauthorized(res: Response, message: string, code: string): void {
  res.status(401).json({ error: { message, type: 'invalid_request_error', param: null, code } });
}

/**
 * The API's rule for the operator routes: `Authorization: Bearer <key>` on `/v1/*` with the keys of LVR_API_KEYS /
 * LVR_API_KEYS_FILE, compared as SHA-256 digests in constant time; health probes stay open; no keys = open.
 */
export function apiKeyGuard(keys: readonly string[]) {
  const digests = keys.map(digest);
  return (req: Request, res: Response, next: NextFunction): void => {
    const p = req.path.toLowerCase().replace(/\/+/g, '/');
    if (digests.length === 0 || req.method === 'OPTIONS' || !(p === '/v1' || p.startsWith('/v1/')))
      return next();
    const match = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    if (!match)
      return unauthorized(res, 'Missing API key: send Authorization: Bearer <key>', 'missing_api_key');
    const candidate = digest(match[1]);
    let ok = false;
    for (const d of digests) ok = timingSafeEqual(d, candidate) || ok;
    if (!ok) return unauthorized(res, 'Incorrect API key provided', 'invalid_api_key');
    next();
  };
}
