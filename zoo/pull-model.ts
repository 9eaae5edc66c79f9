/**
 * Fetch a catalogue entry into the store: download (resumable, verified), publish the blob under
 * its sha256, then the entry's index record. Once per entry however many callers ask at once
 * (see storage/claim.ts); from the cache when it is there; never from the network offline.
 */
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { PullableEntry } from './catalogue.js';
import { OfflineError } from './errors.js';
import { downloadFile, type DownloadProgress } from './fetch/download-file.js';
import { resolveSource, type SourceSettings } from './fetch/resolve-source.js';
import { runOnce, type ClaimOptions } from './storage/claim.js';
import { blobKey, claimKey, readSourceRecord, writeSourceRecord, type SourceRecord } from './store.js';
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
    throw new OfflineError(`'${entry.id}' is not in the cache (${storage.location}) and offline mode is on`);
  }
  const revalidating = cached;
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
      const result = await downloadFile({
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
      });
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
