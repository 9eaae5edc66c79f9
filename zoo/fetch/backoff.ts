/** Exponential backoff with jitter, for retrying transient failures. */

/** Parameters of `backoffDelay`. */
export interface BackoffParams {
  /** 1 for the first retry. */
  attempt: number;
  /** Delay before the first retry, before jitter. @default 500 */
  baseMs?: number;
  /** Upper bound of any delay. @default 30_000 */
  maxMs?: number;
  /** A server's `Retry-After`, in milliseconds, which wins when longer (still bounded by `maxMs`). */
  retryAfterMs?: number;
  /** Source of randomness in [0, 1). @default Math.random */
  random?: () => number;
}

/**
 * "Equal jitter": half of `base * 2^(attempt-1)` (capped) for sure, plus up to the other half at
 * random, so that clients that failed together do not retry together.
 */
export function backoffDelay(params: BackoffParams): number {
  const base = params.baseMs ?? 500;
  const max = params.maxMs ?? 30_000;
  const random = params.random ?? Math.random;
  const ceiling = Math.min(max, base * 2 ** Math.max(0, params.attempt - 1));
  const delay = ceiling / 2 + random() * (ceiling / 2);
  return Math.min(max, Math.max(delay, params.retryAfterMs ?? 0));
}

/** A `Retry-After` header (seconds or an HTTP date) in milliseconds from now; undefined if absent or unreadable. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isFinite(date) ? Math.max(0, date - now) : undefined;
}
