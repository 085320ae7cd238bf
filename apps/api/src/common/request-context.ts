import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';

const CLIENT_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Request id: the client's `X-Request-Id` when it is sane, otherwise a fresh one; echoed on the response. */
export function requestIdMiddleware(req: Request, res: Response, next: NextFunction): void {
  const header = req.headers['x-request-id'];
  const given = typeof header === 'string' && CLIENT_ID.test(header) ? header : undefined;
  const id = given ?? `req-${randomUUID()}`;
  (req as RequestWithId).requestId = id;
  (req as RequestWithId).startedAt = process.hrtime.bigint();
  res.setHeader('X-Request-Id', id);
  next();
}

export interface RequestWithId extends Request {
  requestId?: string;
  startedAt?: bigint;
}

export function requestIdOf(req: unknown): string {
  return (req as RequestWithId | undefined)?.requestId ?? 'unknown';
}
