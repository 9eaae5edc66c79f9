/**
 * Failures of upstreams, remembered for a short while per URL, in this process's memory: a
 * zoo or a mirror that is down (or refuses, or sends the wrong bytes) is asked again only after
 * `ttlMs`; until then the same failure is answered at once, retryable, with the seconds left
 * (`retryAfterSeconds`, which the HTTP edge sends as `Retry-After`), instead of every request
 * waiting through the timeouts and retries again.
 */
import { AcsHubError, makeError, type ErrorCode } from '../../converters/errors.js';

/** The codes of failures that come from an upstream, and are remembered. */
const REMEMBERED: ReadonlySet<ErrorCode> = new Set(['UPSTREAM_UNAVAILABLE', 'UPSTREAM_REFUSED', 'INTEGRITY_FAILED']);

/** Parameters of a `FailureMemory`. */
export interface FailureMemoryParams {
  /** How long a failure is remembered, in milliseconds; 0 remembers nothing. @default 30_000 */
  ttlMs?: number;
  /** Most URLs remembered at once; the oldest is forgotten first. @default 1000 */
  maxEntries?: number;
  /** The clock. @default Date.now */
  now?: () => number;
}

interface Remembered {
  error: AcsHubError;
  until: number;
}

/** See the module comment. */
export class FailureMemory {
  private readonly entries = new Map<string, Remembered>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(params: FailureMemoryParams = {}) {
    this.ttlMs = params.ttlMs ?? 30_000;
    this.maxEntries = params.maxEntries ?? 1000;
    this.now = params.now ?? Date.now;
  }

  /** Throw the failure remembered for `url`, if there is one still fresh. */
  check(url: string): void {
    const hit = this.entries.get(url);
    if (hit === undefined) return;
    const left = hit.until - this.now();
    if (left <= 0) {
      this.entries.delete(url);
      return;
    }
    const seconds = Math.max(1, Math.ceil(left / 1000));
    throw makeError(hit.error.code, `${hit.error.message} (failed ${Math.round((this.ttlMs - left) / 1000)} s ago; not asked again for ${seconds} s)`, {
      ...hit.error.fields(),
      retryable: true,
      retryAfterSeconds: seconds,
    });
  }

  /** Remember `err` for `url` when it is an upstream's failure; other errors are not kept. */
  remember(url: string, err: unknown): void {
    if (this.ttlMs <= 0 || !(err instanceof AcsHubError) || !REMEMBERED.has(err.code)) return;
    this.entries.delete(url);
    this.entries.set(url, { error: err, until: this.now() + this.ttlMs });
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }
}
