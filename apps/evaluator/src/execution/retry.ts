import OpenAI from 'openai';

export interface RetryPolicy {
  maxRetries: number;
  baseMs: number;
  maxMs: number;
}

/** 429, 5xx, timeouts and connection failures are worth another try; other answers are final. */
export function isRetryable(error: unknown): boolean {
  if (error instanceof OpenAI.APIConnectionError) return true; // includes APIConnectionTimeoutError
  if (error instanceof OpenAI.APIError) return error.status === 429 || (error.status ?? 0) >= 500;
  return false;
}

/** Seconds from `Retry-After` when the server sent one (the API does on 429). */
function retryAfterMs(error: unknown): number | undefined {
  if (!(error instanceof OpenAI.APIError)) return undefined;
  const value = error.headers?.get?.('retry-after');
  const seconds = value ? Number(value) : NaN;
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined;
}

/** Exponential backoff with full jitter, never shorter than the server's Retry-After, capped at `maxMs`. */
export function backoffMs(
  attempt: number,
  policy: RetryPolicy,
  error?: unknown,
  random = Math.random,
): number {
  const exponential = Math.min(policy.maxMs, policy.baseMs * 2 ** attempt);
  const jittered = exponential / 2 + random() * (exponential / 2);
  return Math.min(policy.maxMs, Math.max(jittered, retryAfterMs(error) ?? 0));
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface Attempted<T> {
  value: T;
  /** 1 + retries. */
  attempts: number;
}

export class RetriesExhaustedError extends Error {
  constructor(
    readonly attempts: number,
    readonly last: unknown,
  ) {
    super(`gave up after ${attempts} attempts: ${(last as Error)?.message ?? String(last)}`);
  }
}

export async function withRetries<T>(
  call: () => Promise<T>,
  policy: RetryPolicy,
  signal?: AbortSignal,
): Promise<Attempted<T>> {
  for (let attempt = 0; ; attempt++) {
    try {
      return { value: await call(), attempts: attempt + 1 };
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (!isRetryable(error)) throw error;
      if (attempt >= policy.maxRetries) throw new RetriesExhaustedError(attempt + 1, error);
      await sleep(backoffMs(attempt, policy, error), signal);
    }
  }
}
