/**
 * A cache of onnxruntime sessions bounded by memory, not by count: each session is charged
 * an estimate of what it holds (its weights, pre-packed copies and arena), sessions are
 * built once per key and shared, and the least recently used idle ones are released when a
 * new one would exceed the budget. A session in use is never released.
 */
import debug from 'debug';

const log = debug('acs-hub:runtime');

/** What the cache holds: a created session, released when evicted. */
export interface Releasable {
  session: { release(): Promise<void> };
}

/** One cached session. */
interface Entry<T extends Releasable> {
  key: string;
  created: Promise<T>;
  bytes: number;
  users: number;
  lastUsed: number;
}

/** A session borrowed from the cache; call `release()` when done. */
export interface Lease<T extends Releasable> {
  readonly key: string;
  readonly created: T;
  release(): void;
}

/** Options of the cache. */
export interface SessionCacheParams {
  /** Memory budget for all sessions, in bytes. @default 2 GiB */
  maxBytes?: number;
}

/** Estimated resident size of a session for a model of `modelBytes` bytes. */
export function estimateSessionBytes(modelBytes: number): number {
  // Weights, their pre-packed GEMM copy, and the memory arena's first blocks.
  return 2 * modelBytes + 64 * 1024 * 1024;
}

/** See the module comment. */
export class SessionCache<T extends Releasable> {
  private readonly entries = new Map<string, Entry<T>>();
  private readonly maxBytes: number;

  constructor(params: SessionCacheParams = {}) {
    this.maxBytes = params.maxBytes ?? 2 * 1024 ** 3;
  }

  /** Bytes charged to the cached sessions. */
  get usedBytes(): number {
    let n = 0;
    for (const e of this.entries.values()) n += e.bytes;
    return n;
  }

  /** Keys of the cached sessions, least recently used first. */
  keys(): string[] {
    return [...this.entries.values()].sort((a, b) => a.lastUsed - b.lastUsed).map((e) => e.key);
  }

  /**
   * Borrow the session of `key`, creating it with `create` (charged `bytes`) if needed. Two
   * concurrent calls for a missing key share one creation.
   */
  async acquire(key: string, bytes: number, create: () => Promise<T>): Promise<Lease<T>> {
    let entry = this.entries.get(key);
    if (!entry) {
      const room = this.makeRoom(bytes);
      entry = { key, created: room.then(create), bytes, users: 0, lastUsed: Date.now() };
      this.entries.set(key, entry);
      entry.created.catch(() => this.entries.delete(key));
    }
    entry.users++;
    entry.lastUsed = Date.now();
    let created: T;
    try {
      created = await entry.created;
    } catch (err) {
      entry.users--;
      throw err;
    }
    let released = false;
    const e = entry;
    return {
      key,
      created,
      release: () => {
        if (released) return;
        released = true;
        e.users--;
        e.lastUsed = Date.now();
      },
    };
  }

  /** Choose and forget the sessions to evict now (synchronously), then release them. */
  private async makeRoom(bytes: number): Promise<void> {
    const idle = [...this.entries.values()].filter((e) => e.users === 0).sort((a, b) => a.lastUsed - b.lastUsed);
    let used = this.usedBytes;
    const evicted: Entry<T>[] = [];
    for (const e of idle) {
      if (used + bytes <= this.maxBytes) break;
      this.entries.delete(e.key);
      used -= e.bytes;
      evicted.push(e);
      log('release session %s (%d bytes) to make room', e.key, e.bytes);
    }
    await Promise.all(evicted.map((e) => e.created.then((c) => c.session.release()).catch(() => undefined)));
  }

  /** Forget the session of `key` (one that can no longer run); its users keep their leases. */
  forget(key: string): void {
    this.entries.delete(key);
  }

  /** Release every idle session (and forget the busy ones once they finish). */
  async close(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(all.map((e) => e.created.then((c) => c.session.release()).catch(() => undefined)));
  }
}
