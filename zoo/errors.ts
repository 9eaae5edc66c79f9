/**
 * Errors of the zoo: the catalogue, fetching from public sources, and storage (codes, titles
 * and whether each is worth a retry in the catalogue, `converters/errors.ts`). Transient
 * failures (an upstream that timed out, reset the connection or answered 5xx; a storage
 * backend that failed) are `retryable`; everything else is permanent and retrying it would
 * only repeat it.
 */
import { defineError } from '../converters/errors.js';

/** An id (or alias) that the catalogue does not list. */
export const ModelNotFoundError = defineError('ModelNotFoundError', 'MODEL_NOT_FOUND');
/** An instance of `ModelNotFoundError`. */
export type ModelNotFoundError = InstanceType<typeof ModelNotFoundError>;

/** A catalogue file that does not match the schema; the message names the entry and field. */
export const CatalogueError = defineError('CatalogueError', 'CATALOGUE_INVALID');
/** An instance of `CatalogueError`. */
export type CatalogueError = InstanceType<typeof CatalogueError>;

/** Where an upstream failure happened. */
export interface UpstreamFields {
  /** The URL that failed (credentials never included). */
  url: string;
  /** The upstream HTTP status, when the failure was an answer rather than a broken connection. */
  upstreamStatus?: number;
  /** How long the upstream asked us to wait (`Retry-After`), in milliseconds. */
  retryAfterMs?: number;
}

/** A transient upstream failure: a timeout, a reset or dropped connection, a 5xx or 429 answer. Always retryable. */
export const UpstreamError = defineError<UpstreamFields>('UpstreamError', 'UPSTREAM_UNAVAILABLE');
/** An instance of `UpstreamError`. */
export type UpstreamError = InstanceType<typeof UpstreamError>;

/** A permanent upstream answer: 404, 401/403 (a gated repository without a token), other 4xx, too many redirects. */
export const UpstreamRefusedError = defineError<Omit<UpstreamFields, 'retryAfterMs'>>('UpstreamRefusedError', 'UPSTREAM_REFUSED');
/** An instance of `UpstreamRefusedError`. */
export type UpstreamRefusedError = InstanceType<typeof UpstreamRefusedError>;

/** Bytes that do not match what was expected of them: sha256, hash prefix, size, pinned revision. */
export const IntegrityError = defineError('IntegrityError', 'INTEGRITY_FAILED');
/** An instance of `IntegrityError`. */
export type IntegrityError = InstanceType<typeof IntegrityError>;

/** A download larger than the configured bound (announced or counted while streaming). */
export const DownloadTooLargeError = defineError('DownloadTooLargeError', 'DOWNLOAD_TOO_LARGE');
/** An instance of `DownloadTooLargeError`. */
export type DownloadTooLargeError = InstanceType<typeof DownloadTooLargeError>;

/**
 * Where a store error happened: the store's location (a data directory, `s3://bucket/prefix`).
 * Its message names it for the operator and the command line; the HTTP edge replaces it with
 * `<store>`, so that no client learns the server's paths or bucket.
 */
export interface InStore {
  store?: string;
}

/** Offline mode and the object is not in the cache. */
export const OfflineError = defineError<InStore>('OfflineError', 'OFFLINE');
/** An instance of `OfflineError`. */
export type OfflineError = InstanceType<typeof OfflineError>;

/** A key that is not in storage. */
export const ObjectNotFoundError = defineError<{ key: string }>('ObjectNotFoundError', 'OBJECT_NOT_FOUND');
/** An instance of `ObjectNotFoundError`. */
export type ObjectNotFoundError = InstanceType<typeof ObjectNotFoundError>;

/** The `ObjectNotFoundError` of a key. */
export function objectNotFound(key: string, cause?: unknown): ObjectNotFoundError {
  return new ObjectNotFoundError(`object '${key}' is not in storage`, { key, cause });
}

/** A storage backend failure (disk full, S3 unreachable); retryable unless said otherwise. */
export const StorageError = defineError<InStore>('StorageError', 'STORAGE_FAILED');
/** An instance of `StorageError`. */
export type StorageError = InstanceType<typeof StorageError>;

/** Another worker held the claim on a piece of work for longer than this one would wait. */
export const ClaimTimeoutError = defineError<InStore>('ClaimTimeoutError', 'CLAIM_TIMEOUT');
/** An instance of `ClaimTimeoutError`. */
export type ClaimTimeoutError = InstanceType<typeof ClaimTimeoutError>;
