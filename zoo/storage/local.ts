/**
 * Local-disk storage, the embedded default: one file per key under a root directory.
 *
 * Writes go to `.<name>.tmp-<pid>-<random>` beside the target, are fsynced, then renamed (or,
 * for `ifAbsent`, hard-linked, which fails atomically when the target exists), so nothing
 * partial is ever visible under a key. Temporaries left by a killed writer are removed by
 * `sweepTemporaries` once they are old enough (never by pid: a writer in another container or
 * on another host sharing the directory has a pid this process cannot see).
 * With a size budget, the least recently read objects are evicted, never one being read.
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readdir, rename, stat, unlink, utimes, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, relative, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { objectNotFound, StorageError } from '../errors.js';
import { assertKey, assertPrefix, assertRange, type ObjectInfo, type ObjectStorage, type ReadOptions, type WriteBody, type WriteOptions, type WriteResult } from './storage.js';
import { AREAS } from '../store.js';

const TEMP = /^\.(.+)\.tmp-\d+-[0-9a-f]+$/;

/** Parameters of `openLocalStorage`. */
export interface LocalStorageParams {
  /** The directory holding the objects. */
  root: string;
  /**
   * Size budget in bytes: above it, least recently read objects under `evictablePrefixes` are
   * removed. 0 for no budget.
   * @default 0
   */
  maxBytes?: number;
  /**
   * Key prefixes that eviction may remove (the cache proper, not claims or index records).
   * @default the store's source blobs and conversions (`AREAS.blobs`, `AREAS.conversions`)
   */
  evictablePrefixes?: readonly string[];
  /** The clock that orders reads for eviction, in milliseconds (tests give their own). @default Date.now */
  now?: () => number;
}

function isErrno(err: unknown, code: string): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === code;
}

async function writeAll(fh: FileHandle, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.byteLength) {
    const { bytesWritten } = await fh.write(bytes, off, bytes.byteLength - off);
    off += bytesWritten;
  }
}

async function fsyncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // Some filesystems refuse to fsync a directory; the rename itself is still atomic.
  }
}

async function* walk(dir: string): AsyncGenerator<string> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return;
    throw err;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* walk(p);
    else if (e.isFile()) yield p;
  }
}

/** The local-disk backend. Create it with `openLocalStorage`. */
export class LocalStorage implements ObjectStorage {
  readonly location: string;
  readonly conditionalWrites = true;
  private readonly root: string;
  private readonly maxBytes: number;
  private readonly evictable: readonly string[];
  private readonly now: () => number;
  /** Size and last read of each object, kept only under a budget. */
  private readonly usage = new Map<string, { size: number; lastAccess: number }>();
  private total = 0;
  /** Open readers per key: eviction skips these. */
  private readonly readers = new Map<string, number>();

  /** Use `openLocalStorage`, which also cleans up. */
  constructor(params: LocalStorageParams) {
    this.root = params.root;
    this.location = params.root;
    this.maxBytes = params.maxBytes ?? 0;
    this.evictable = params.evictablePrefixes ?? [AREAS.blobs, AREAS.conversions];
    this.now = params.now ?? Date.now;
  }

  private pathOf(key: string): string {
    assertKey(key);
    return join(this.root, ...key.split('/'));
  }

  private keyOf(path: string): string {
    return relative(this.root, path).split(sep).join('/');
  }

  /** Create the root and, under a budget, index what is stored. */
  async start(): Promise<void> {
    await mkdir(this.root, { recursive: true });
    if (this.maxBytes === 0) return;
    for await (const path of walk(this.root)) {
      if (basename(path).startsWith('.')) continue;
      const st = await stat(path).catch(() => undefined);
      if (st) this.track(this.keyOf(path), st.size, Math.max(st.atimeMs, st.mtimeMs));
    }
  }

  async sweepTemporaries(params: { before: Date; keep: (key: string) => Promise<boolean> }): Promise<string[]> {
    const removed: string[] = [];
    for await (const path of walk(this.root)) {
      const m = TEMP.exec(basename(path));
      if (!m) continue;
      const st = await stat(path).catch(() => undefined);
      // A live writer appends as it goes: its temporary's mtime stays recent.
      if (!st || st.mtimeMs >= params.before.getTime()) continue;
      const key = this.keyOf(join(dirname(path), m[1]!));
      if (await params.keep(key)) continue;
      await unlink(path).catch(() => undefined);
      removed.push(`${key} (${basename(path)})`);
    }
    return removed;
  }

  private track(key: string, size: number, lastAccess: number): void {
    if (this.maxBytes === 0) return;
    this.total -= this.usage.get(key)?.size ?? 0;
    this.usage.set(key, { size, lastAccess });
    this.total += size;
  }

  private untrack(key: string): void {
    const u = this.usage.get(key);
    if (u) {
      this.total -= u.size;
      this.usage.delete(key);
    }
  }

  private async evict(keep: string): Promise<void> {
    if (this.maxBytes === 0 || this.total <= this.maxBytes) return;
    const candidates = [...this.usage]
      .filter(([k]) => k !== keep && !this.readers.has(k) && this.evictable.some((p) => k.startsWith(p)))
      .sort((a, b) => a[1].lastAccess - b[1].lastAccess);
    for (const [k] of candidates) {
      if (this.total <= this.maxBytes) break;
      await this.delete(k);
    }
  }

  async has(key: string): Promise<boolean> {
    return (await this.stat(key)) !== undefined;
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    try {
      const st = await stat(this.pathOf(key));
      return st.isFile() ? { key, size: st.size, modified: st.mtime } : undefined;
    } catch (err) {
      if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return undefined;
      throw new StorageError(`cannot stat '${key}' in ${this.root}: ${(err as Error).message}`, { cause: err, store: this.location });
    }
  }

  async read(key: string, options: ReadOptions = {}): Promise<Readable> {
    assertRange(options.range);
    const path = this.pathOf(key);
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR') || isErrno(err, 'EISDIR')) throw objectNotFound(key, err);
      throw new StorageError(`cannot read '${key}' in ${this.root}: ${(err as Error).message}`, { cause: err, store: this.location });
    }
    const { size } = await fh.stat();
    const range = options.range;
    if (range && range.start >= size) {
      await fh.close();
      throw new RangeError(`range start ${range.start} is past the end of '${key}' (${size} bytes)`);
    }
    // The open descriptor keeps the bytes readable even if the file is replaced or removed meanwhile.
    const now = this.now();
    if (this.usage.has(key)) this.usage.get(key)!.lastAccess = now;
    await utimes(path, new Date(now), (await fh.stat()).mtime).catch(() => undefined);
    // The stream owns the descriptor (closed at its end or on destroy); holding it open keeps
    // the bytes readable even if the file is replaced or removed meanwhile.
    const stream = fh.createReadStream({ start: range?.start, end: range?.end, signal: options.signal });
    this.readers.set(key, (this.readers.get(key) ?? 0) + 1);
    let released = false;
    const done = (): void => {
      if (released) return;
      released = true;
      const n = (this.readers.get(key) ?? 1) - 1;
      if (n <= 0) this.readers.delete(key);
      else this.readers.set(key, n);
    };
    stream.once('end', done);
    stream.once('close', done);
    return stream;
  }

  async write(key: string, body: WriteBody, options: WriteOptions = {}): Promise<WriteResult> {
    const path = this.pathOf(key);
    const dir = dirname(path);
    try {
      await mkdir(dir, { recursive: true });
    } catch (err) {
      throw new StorageError(`cannot create ${dir}: ${(err as Error).message}`, { cause: err, store: this.location });
    }
    if (options.ifAbsent && (await this.has(key))) {
      if (typeof body === 'object' && 'destroy' in body) body.destroy();
      return { written: false, size: 0 };
    }
    const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
    let fh: FileHandle | undefined;
    let size = 0;
    try {
      fh = await open(tmp, 'wx');
      if (typeof body === 'string' || body instanceof Uint8Array) {
        const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
        await writeAll(fh, bytes);
        size = bytes.byteLength;
      } else {
        for await (const chunk of body) {
          options.signal?.throwIfAborted();
          const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Uint8Array);
          await writeAll(fh, bytes);
          size += bytes.byteLength;
        }
      }
      options.signal?.throwIfAborted();
      await fh.sync();
      await fh.close();
      if (options.ifAbsent) {
        try {
          await link(tmp, path);
        } catch (err) {
          if (isErrno(err, 'EEXIST')) return { written: false, size: 0 };
          throw err;
        } finally {
          await unlink(tmp).catch(() => undefined);
        }
      } else {
        await rename(tmp, path);
      }
      await fsyncDir(dir);
    } catch (err) {
      await fh?.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
      if (typeof body === 'object' && 'destroy' in body) body.destroy();
      if ((err as Error).name === 'AbortError' || err instanceof RangeError) throw err;
      throw new StorageError(`cannot write '${key}' in ${this.root}: ${(err as Error).message}`, { cause: err, store: this.location });
    }
    this.track(key, size, this.now());
    await this.evict(key);
    return { written: true, size };
  }

  async delete(key: string): Promise<void> {
    try {
      await unlink(this.pathOf(key));
    } catch (err) {
      if (!isErrno(err, 'ENOENT') && !isErrno(err, 'ENOTDIR')) throw new StorageError(`cannot delete '${key}' in ${this.root}: ${(err as Error).message}`, { cause: err, store: this.location });
    }
    this.untrack(key);
  }

  async *list(prefix = ''): AsyncIterable<ObjectInfo> {
    assertPrefix(prefix);
    const dirPart = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/')) : '';
    const start = dirPart ? join(this.root, ...dirPart.split('/')) : this.root;
    for await (const path of walk(start)) {
      if (basename(path).startsWith('.')) continue;
      const key = this.keyOf(path);
      if (!key.startsWith(prefix)) continue;
      const st = await stat(path).catch(() => undefined);
      if (st) yield { key, size: st.size, modified: st.mtime };
    }
  }

  async close(): Promise<void> {
    // Nothing held open between calls.
  }
}

/** Open (creating if needed) a local store. */
export async function openLocalStorage(params: LocalStorageParams): Promise<LocalStorage> {
  const storage = new LocalStorage(params);
  await storage.start();
  return storage;
}
