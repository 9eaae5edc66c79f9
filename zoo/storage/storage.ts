/**
 * The storage interface shared by the local-disk and S3 backends, and the rules for keys.
 *
 * Every write is atomic: a reader sees either nothing or the whole object, never a partial one,
 * whatever happens to the writer (an error, an abort, SIGKILL).
 */
import type { Readable } from 'node:stream';

/** What `stat` and `list` tell about an object. */
export interface ObjectInfo {
  readonly key: string;
  readonly size: number;
  readonly modified: Date;
  /** The store's entity tag, where it has one. */
  readonly etag?: string;
}

/** A byte range; `end` is inclusive, as in HTTP. */
export interface ByteRange {
  readonly start: number;
  readonly end?: number;
}

/** Options of `read`. */
export interface ReadOptions {
  /** Only these bytes. */
  range?: ByteRange;
  signal?: AbortSignal;
}

/** Options of `write`. */
export interface WriteOptions {
  /**
   * Write only if no object has the key (`If-None-Match: *`). Atomic where the backend's
   * `conditionalWrites` is true; a best-effort check-then-write otherwise.
   */
  ifAbsent?: boolean;
  signal?: AbortSignal;
}

/** What `write` did. */
export interface WriteResult {
  /** False when `ifAbsent` was set and the key existed. */
  readonly written: boolean;
  /** Bytes written (0 when not written). */
  readonly size: number;
}

/** A body to write. */
export type WriteBody = Readable | Uint8Array | string;

/** An object store: local disk or S3. */
export interface ObjectStorage {
  /** Human-readable location, e.g. `/data/objects` or `s3://bucket/prefix`. */
  readonly location: string;
  /** Whether `write(..., {ifAbsent: true})` is enforced atomically by the store itself. */
  readonly conditionalWrites: boolean;
  has(key: string): Promise<boolean>;
  /** The object's size and dates, or undefined when there is none. */
  stat(key: string): Promise<ObjectInfo | undefined>;
  /** A stream of the object's bytes (or a range of them); `ObjectNotFoundError` when absent. */
  read(key: string, options?: ReadOptions): Promise<Readable>;
  /** Write an object atomically (whole or not at all). */
  write(key: string, body: WriteBody, options?: WriteOptions): Promise<WriteResult>;
  /** Remove an object; no error when there is none. */
  delete(key: string): Promise<void>;
  /** Every object whose key starts with `prefix`, in no particular order. */
  list(prefix?: string): AsyncIterable<ObjectInfo>;
  /**
   * Remove the backend's own leftovers of writers that died (temporary files, incomplete
   * multipart uploads) begun before `before`, except those whose target key `keep` vetoes;
   * resolves to what was removed (as `key` or `key (temporary name)`). Invisible to every
   * other method: this never removes an object.
   */
  sweepTemporaries(params: { before: Date; keep: (key: string) => Promise<boolean> }): Promise<string[]>;
  /** Release connections and timers. */
  close(): Promise<void>;
}

const SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

/**
 * Check a key: `/`-separated segments of letters, digits, `.`, `_` and `-`, none starting with
 * a dot (names starting with a dot are the backends' own temporaries), at most 1024 bytes.
 */
export function assertKey(key: string): void {
  if (key.length === 0 || key.length > 1024 || !key.split('/').every((s) => SEGMENT.test(s))) {
    throw new RangeError(`storage key '${key}' is invalid: use '/'-separated segments of [A-Za-z0-9._-] that do not start with '.' (at most 1024 bytes)`);
  }
}

/** Check a list prefix: empty, or the start of a key (no leading '/', no '.' or '..' segments). */
export function assertPrefix(prefix: string): void {
  if (!/^[A-Za-z0-9._/-]*$/.test(prefix) || prefix.startsWith('/') || prefix.split('/').some((s) => s === '.' || s === '..')) {
    throw new RangeError(`storage prefix '${prefix}' is invalid: use the start of a key ([A-Za-z0-9._/-], no '.' or '..' segments)`);
  }
}

/** Check a byte range. */
export function assertRange(range: ByteRange | undefined): void {
  if (range === undefined) return;
  if (!Number.isSafeInteger(range.start) || range.start < 0 || (range.end !== undefined && (!Number.isSafeInteger(range.end) || range.end < range.start))) {
    throw new RangeError(`byte range {start: ${range.start}, end: ${range.end}} is invalid: need 0 <= start <= end`);
  }
}

/** Read a whole object into memory (for small objects: index records, claims, cards). */
export async function readAll(storage: ObjectStorage, key: string, options: ReadOptions = {}): Promise<Buffer> {
  const stream = await storage.read(key, options);
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

/** Read a small JSON object, or undefined when there is none. */
export async function readJson<T>(storage: ObjectStorage, key: string): Promise<T | undefined> {
  if (!(await storage.has(key))) return undefined;
  try {
    return JSON.parse((await readAll(storage, key)).toString('utf8')) as T;
  } catch (err) {
    if ((err as { code?: string }).code === 'OBJECT_NOT_FOUND') return undefined;
    if (err instanceof SyntaxError) return undefined;
    throw err;
  }
}
