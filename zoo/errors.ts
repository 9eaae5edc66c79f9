/**
 * Typed errors of the zoo: the catalogue, fetching from public sources, and storage.
 *
 * As in `converters/errors.ts`, every error carries a stable `code` (the key of its entry in
 * `ZOO_ERRORS`) and the HTTP status the server answers with. Transient failures (an upstream
 * that timed out, reset the connection or answered 5xx; a storage backend that failed) are
 * `retryable`; everything else is permanent and retrying it would only repeat it.
 */
import { AcsHubError, type ErrorSpec } from '../converters/errors.js';

/** The codes thrown by `zoo/`, with their status and title. */
export const ZOO_ERRORS = {
  MODEL_NOT_FOUND: { status: 404, title: 'Unknown zoo model' },
  CATALOGUE_INVALID: { status: 500, title: 'Invalid zoo catalogue' },
  UPSTREAM_UNAVAILABLE: { status: 502, title: 'Upstream source unavailable' },
  UPSTREAM_REFUSED: { status: 502, title: 'Upstream source refused the request' },
  INTEGRITY_FAILED: { status: 502, title: 'Downloaded file failed verification' },
  DOWNLOAD_TOO_LARGE: { status: 413, title: 'Download exceeds the size limit' },
  OFFLINE: { status: 503, title: 'Not cached, and offline mode forbids fetching' },
  OBJECT_NOT_FOUND: { status: 404, title: 'Object not in storage' },
  STORAGE_FAILED: { status: 503, title: 'Storage backend failed' },
  CLAIM_TIMEOUT: { status: 503, title: 'Timed out waiting for another worker' },
} as const satisfies Record<string, ErrorSpec>;

/** A code of `ZOO_ERRORS`. */
export type ZooErrorCode = keyof typeof ZOO_ERRORS;

/** Base class of the zoo's errors: `retryable` tells whether the same call may succeed later. */
export class ZooError extends AcsHubError {
  /** Whether repeating the operation may succeed (a transient failure). */
  readonly retryable: boolean;
  constructor(code: ZooErrorCode, message: string, options?: ErrorOptions & { retryable?: boolean }) {
    super(code, ZOO_ERRORS[code], message, options);
    this.retryable = options?.retryable ?? false;
  }
}

/** An id (or alias) that the catalogue does not list. */
export class ModelNotFoundError extends ZooError {
  constructor(message: string) {
    super('MODEL_NOT_FOUND', message);
  }
}

/** A catalogue file that does not match the schema; the message names the entry and field. */
export class CatalogueError extends ZooError {
  constructor(message: string, options?: ErrorOptions) {
    super('CATALOGUE_INVALID', message, options);
  }
}

/**
 * A transient upstream failure: a timeout, a reset or dropped connection, a 5xx or 429 answer.
 * Always retryable; `status` is the upstream's HTTP status when there was one.
 */
export class UpstreamError extends ZooError {
  /** The URL that failed (credentials never included). */
  readonly url: string;
  /** The upstream HTTP status, when the failure was an answer rather than a broken connection. */
  readonly upstreamStatus: number | undefined;
  /** How long the upstream asked us to wait (`Retry-After`), in milliseconds. */
  readonly retryAfterMs: number | undefined;
  constructor(message: string, options: ErrorOptions & { url: string; upstreamStatus?: number; retryAfterMs?: number }) {
    super('UPSTREAM_UNAVAILABLE', message, { ...options, retryable: true });
    this.url = options.url;
    this.upstreamStatus = options.upstreamStatus;
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** A permanent upstream answer: 404, 401/403 (a gated repository without a token), other 4xx, too many redirects. */
export class UpstreamRefusedError extends ZooError {
  /** The URL that was refused. */
  readonly url: string;
  /** The upstream HTTP status, when there was one. */
  readonly upstreamStatus: number | undefined;
  constructor(message: string, options: ErrorOptions & { url: string; upstreamStatus?: number }) {
    super('UPSTREAM_REFUSED', message, options);
    this.url = options.url;
    this.upstreamStatus = options.upstreamStatus;
  }
}

/** Bytes that do not match what was expected of them: sha256, hash prefix, size, pinned revision. */
export class IntegrityError extends ZooError {
  constructor(message: string, options?: ErrorOptions) {
    super('INTEGRITY_FAILED', message, options);
  }
}

/** A download larger than the configured bound (announced or counted while streaming). */
export class DownloadTooLargeError extends ZooError {
  constructor(message: string) {
    super('DOWNLOAD_TOO_LARGE', message);
  }
}

/** Offline mode and the object is not in the cache. */
export class OfflineError extends ZooError {
  constructor(message: string) {
    super('OFFLINE', message);
  }
}

/** A key that is not in storage. */
export class ObjectNotFoundError extends ZooError {
  /** The missing key. */
  readonly key: string;
  constructor(key: string, options?: ErrorOptions) {
    super('OBJECT_NOT_FOUND', `object '${key}' is not in storage`, options);
    this.key = key;
  }
}

/** A storage backend failure (disk full, S3 unreachable); retryable unless said otherwise. */
export class StorageError extends ZooError {
  constructor(message: string, options?: ErrorOptions & { retryable?: boolean }) {
    super('STORAGE_FAILED', message, { retryable: true, ...options });
  }
}

/** Another worker held the claim on a piece of work for longer than this one would wait. */
export class ClaimTimeoutError extends ZooError {
  constructor(message: string) {
    super('CLAIM_TIMEOUT', message, { retryable: true });
  }
}

/** Whether an error is worth a retry: a retryable `ZooError`. */
export function isRetryable(err: unknown): boolean {
  return err instanceof ZooError && err.retryable;
}
