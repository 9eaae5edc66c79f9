/**
 * Fetch a catalogue entry into the store: download (resumable, verified), publish the blob under
 * its sha256, then the entry's index record. Once per entry however many callers ask at once
 * (see storage/claim.ts); from the cache when it is there; never from the network offline.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { join } from 'node:path';
import type { PullableEntry } from './catalogue.js';
import { DownloadTooLargeError, IntegrityError, OfflineError } from './errors.js';
import { downloadFile, type DownloadExpectation, type DownloadProgress } from './fetch/download-file.js';
import { checkHashPrefix } from './fetch/hash-prefix.js';
import type { FailureMemory } from './fetch/failure-memory.js';
import { resolveSource, sourceUrl, type SourceSettings } from './fetch/resolve-source.js';
import { runOnce, type ClaimOptions } from './storage/claim.js';
import { blobKey, claimKey, putBlob, readSourceRecord, writeSourceRecord, type SourceRecord } from './store.js';
import type { ObjectStorage } from './storage/storage.js';

export type { SourceRecord } from './store.js';

/** What `pullModel` returns. */
export interface PullResult extends SourceRecord {
  /** True when it was already in the store (no download). */
  readonly cached: boolean;
}

/** Retry and size settings of downloads (the config's `download`). */
export interface DownloadSettings {
  /** @default 4 GiB */
  maxBytes?: number;
  /** @default 5 */
  retries?: number;
  /** @default 500 */
  backoffMs?: number;
  /** @default 30_000 */
  maxBackoffMs?: number;
  /** How long a failed download's error is remembered and answered at once (see fetch/failure-memory.ts). @default 30_000 */
  failureMemoryMs?: number;
}

/** Parameters of `pullModel`. */
export interface PullModelParams {
  entry: PullableEntry;
  storage: ObjectStorage;
  /** Base URLs, token and timeouts of the sources. */
  sources: SourceSettings;
  /** Local directory for partial downloads (kept across runs, for resuming). */
  stagingDir: string;
  /** Cache only. @default false */
  offline?: boolean;
  /** Ask the upstream whether a cached file changed (`If-None-Match`); a 304 keeps it. @default false */
  revalidate?: boolean;
  download?: DownloadSettings;
  claims?: ClaimOptions;
  /** The network. @default globalThis.fetch */
  fetch?: typeof fetch;
  onProgress?: (e: DownloadProgress) => void;
  signal?: AbortSignal;
  /** Recent failures of upstreams, answered at once instead of asked again. @default none */
  failures?: FailureMemory;
}

/** The cached record of an entry, if its blob is still there and still matches the catalogue. */
export async function findPulled(storage: ObjectStorage, entry: PullableEntry): Promise<SourceRecord | undefined> {
  const rec = await readSourceRecord(storage, entry.id);
  if (!rec || (entry.sha256 !== undefined && rec.sha256 !== entry.sha256)) return undefined;
  const st = await storage.stat(rec.key);
  return st?.size === rec.size ? rec : undefined;
}

const PARTIAL = '.partial';

function stagingPath(stagingDir: string, id: string): string {
  return join(stagingDir, `${id.replace(/\//g, '--')}${PARTIAL}`);
}

/** The entry id whose partial download a staging file (or its sidecar) is, if it is one. */
export function stagedEntryId(fileName: string): string | undefined {
  const base = fileName.replace(/\.meta\.json$/, '');
  return base.endsWith(PARTIAL) ? base.slice(0, -PARTIAL.length).replace(/--/g, '/') : undefined;
}

/** `work`, with its failure remembered for `url`. */
async function rememberFailure<T>(failures: FailureMemory | undefined, url: string, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    failures?.remember(url, err);
    throw err;
  }
}

/**
 * Make sure a catalogue entry's file is in the store, verified; return its record.
 * Throws `OfflineError` when offline and not cached, and the errors of `downloadFile`.
 */
export async function pullModel(params: PullModelParams): Promise<PullResult> {
  const { entry, storage } = params;
  const cached = await findPulled(storage, entry);
  if (cached && !(params.revalidate && !params.offline && cached.etag)) return { ...cached, cached: true };
  if (params.offline) {
    if (cached) return { ...cached, cached: true };
    throw new OfflineError(`'${entry.id}' is not in the cache (${storage.location}) and offline mode is on`, { store: storage.location });
  }
  const revalidating = cached;
  const url = sourceUrl(entry.source, params.sources);
  params.failures?.check(url);
  const { value, produced } = await runOnce<SourceRecord>({
    ...params.claims,
    storage,
    claimKey: claimKey('pull', entry.id),
    signal: params.signal,
    lookup: async () => {
      const rec = await findPulled(storage, entry);
      // While revalidating, only a record newer than the one we started from settles it.
      return rec && (!revalidating || rec.fetchedAt !== revalidating.fetchedAt) ? rec : undefined;
    },
    produce: async ({ signal }) => {
      const resolved = resolveSource(entry, params.sources);
      if (!revalidating && entry.sha256 !== undefined) {
        // The blob may be there without its record (a process killed between the two writes,
        // or another entry with the same file): the pinned hash says it is the right one.
        const st = await storage.stat(blobKey(entry.sha256));
        if (st && (entry.size === undefined || st.size === entry.size)) {
          const record: SourceRecord = { id: entry.id, sha256: entry.sha256, size: st.size, key: blobKey(entry.sha256), url: resolved.url, fetchedAt: new Date().toISOString() };
          await writeSourceRecord(storage, record, signal);
          return record;
        }
      }
      const dest = stagingPath(params.stagingDir, entry.id);
      const dl = params.download ?? {};
      const result = await rememberFailure(params.failures, url, downloadFile({
        url: resolved.url,
        dest,
        headers: resolved.headers,
        expected: resolved.expected,
        inspect: resolved.inspect,
        etag: revalidating?.etag,
        timeoutMs: resolved.timeoutMs,
        maxBytes: dl.maxBytes,
        retries: dl.retries,
        backoffMs: dl.backoffMs,
        maxBackoffMs: dl.maxBackoffMs,
        fetch: params.fetch,
        onProgress: params.onProgress,
        signal,
      }));
      const base = revalidating && result.notModified ? revalidating : undefined;
      const sha256 = base?.sha256 ?? result.sha256;
      const key = blobKey(sha256);
      if (!base && !(await storage.stat(key))) {
        await storage.write(key, createReadStream(dest), { signal });
      }
      const record: SourceRecord = {
        id: entry.id,
        sha256,
        size: base?.size ?? result.size,
        key,
        url: resolved.url,
        etag: result.etag ?? base?.etag,
        repoCommit: resolved.hub.commit ?? base?.repoCommit,
        fetchedAt: new Date().toISOString(),
      };
      await writeSourceRecord(storage, record, signal);
      await rm(dest, { force: true });
      return record;
    },
  });
  return { ...value, cached: !produced && value.fetchedAt === cached?.fetchedAt };
}

/** Parameters of `importModelFile`. */
export interface ImportModelFileParams {
  entry: PullableEntry;
  storage: ObjectStorage;
  /** The file, obtained elsewhere (e.g. copied onto an air-gapped machine). */
  file: string;
  /** Base URLs of the sources, for the record's URL. @default PUBLIC_SOURCES */
  sources?: SourceSettings;
  /** Largest acceptable file, as for a download. @default 4 GiB */
  maxBytes?: number;
  signal?: AbortSignal;
}

/** Throw an `IntegrityError` unless `got` meets what the catalogue expects of the entry's file. */
function checkExpected(id: string, file: string, expected: DownloadExpectation, got: { sha256: string; size: number }): void {
  if (expected.size !== undefined && got.size !== expected.size) throw new IntegrityError(`${file}: ${got.size} bytes, but '${id}' is ${expected.size} bytes`);
  if (expected.sha256 !== undefined && got.sha256 !== expected.sha256) throw new IntegrityError(`${file}: sha256 is ${got.sha256}, but '${id}' has sha256 ${expected.sha256}`);
  if (expected.hashPrefixOf !== undefined) checkHashPrefix(expected.hashPrefixOf, got.sha256);
}

/**
 * Put a file obtained elsewhere into the store as a catalogue entry's file, after the checks a
 * download of it passes (the catalogue's sha256 and size, torchvision's hash prefix). An entry
 * whose catalogue gives neither a sha256 nor a hash prefix cannot be verified, and is refused.
 */
export async function importModelFile(p: ImportModelFileParams): Promise<PullResult> {
  const { entry, storage, file } = p;
  const resolved = resolveSource(entry, p.sources);
  const expected = resolved.expected;
  if (expected.sha256 === undefined && expected.hashPrefixOf === undefined) {
    throw new IntegrityError(`'${entry.id}': the catalogue gives no sha256 to check ${file} against; only a download can fetch it`);
  }
  const { size } = await stat(file);
  const maxBytes = p.maxBytes ?? 4 * 1024 ** 3;
  if (size > maxBytes) throw new DownloadTooLargeError(`${file}: ${size} bytes, more than the ${maxBytes} allowed (download.maxBytes)`);
  if (expected.size !== undefined && size !== expected.size) checkExpected(entry.id, file, expected, { sha256: '', size });
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash, { signal: p.signal });
  const sha256 = hash.digest('hex');
  checkExpected(entry.id, file, expected, { sha256, size });
  const cached = await findPulled(storage, entry);
  if (cached?.sha256 === sha256) return { ...cached, cached: true };
  await putBlob(storage, sha256, createReadStream(file), p.signal);
  const record: SourceRecord = { id: entry.id, sha256, size, key: blobKey(sha256), url: resolved.url, fetchedAt: new Date().toISOString() };
  await writeSourceRecord(storage, record, p.signal);
  return { ...record, cached: false };
}
