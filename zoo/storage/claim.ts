/**
 * Do a piece of work once, however many callers (in this process, or in other processes and
 * replicas sharing the store) ask for it at the same time; everyone gets the one result.
 *
 * In this process, identical calls share one promise. Across processes, the one that holds the
 * claim object (`claims/...`) does the work and publishes the result atomically; the others poll
 * for the result. A claim records its owner (token, host, pid) and a heartbeat that the owner
 * refreshes; a claim whose heartbeat is older than the lease (or whose pid is dead on this host)
 * is stale and may be taken over, so a killed owner never blocks the work for good. The owner
 * deletes its claim when done or failed, so a failure does not poison anything: the next caller
 * simply claims and tries again.
 *
 * Two ways to take a claim, chosen by the store's `conditionalWrites`:
 * - native: `write(claim, {ifAbsent: true})` (`If-None-Match: *` on S3, `link()` on disk). The store
 *   decides; exactly one writer wins.
 * - settle, for stores that ignore `If-None-Match` (s3rver, some S3-compatible stores): look
 *   for a live claim, write one with our token, wait `settleMs`, read it back; only the writer
 *   whose token is there proceeds. Stores are read-after-write consistent and the last write
 *   wins, so two writers that overlap both read the same token. Two owners are possible only if
 *   the second wrote more than `settleMs` after the first one's check, i.e. if looking and
 *   writing took it longer than the settle delay: it publishes once in practice, not in theory.
 *   The costs are `settleMs` of latency per claim, and (should it ever happen) one duplicated
 *   piece of work, harmless because results are deterministic and content-addressed.
 * Taking over a stale claim has the same weakness under both protocols (two callers that find
 * the same stale claim at the same moment), with the same harmless outcome.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { ClaimTimeoutError } from '../errors.js';
import { readJson, type ObjectStorage } from './storage.js';

/** Timing of the claim protocol. */
export interface ClaimOptions {
  /** A claim not refreshed for this long is stale. @default 60_000 */
  leaseMs?: number;
  /** The settle protocol: delay between writing a claim and reading it back. @default 1_000 */
  settleMs?: number;
  /** How often a waiter looks for the result. @default 500 */
  pollMs?: number;
  /** How long a waiter waits before a `ClaimTimeoutError`. @default 1_800_000 */
  waitMs?: number;
  /** Force a protocol; by default the store's `conditionalWrites` decides. */
  protocol?: 'native' | 'settle';
}

/** The body of a claim object. */
export interface ClaimRecord {
  token: string;
  host: string;
  pid: number;
  claimedAt: string;
  heartbeatAt: string;
}

/** Parameters of `runOnce`. */
export interface RunOnceParams<T> extends ClaimOptions {
  storage: ObjectStorage;
  /** The claim's key (`claimKey(...)` of layout.ts). */
  claimKey: string;
  /** The published result, if there is one yet. */
  lookup: () => Promise<T | undefined>;
  /** Do the work and publish it atomically (so that `lookup` finds it); resolves to the result. */
  produce: (ctx: { signal: AbortSignal }) => Promise<T>;
  signal?: AbortSignal;
}

/** What `runOnce` returns. */
export interface RunOnceResult<T> {
  readonly value: T;
  /** True in the one caller whose `produce` ran. */
  readonly produced: boolean;
}

const HOST = hostname();

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether a claim is dead: no heartbeat for a lease, or its process is gone from this host. */
export function isStale(claim: ClaimRecord, leaseMs: number, now = Date.now()): boolean {
  if (now - Date.parse(claim.heartbeatAt) > leaseMs) return true;
  return claim.host === HOST && claim.pid !== process.pid && !pidAlive(claim.pid);
}

const inFlight = new WeakMap<ObjectStorage, Map<string, Promise<RunOnceResult<unknown>>>>();

/**
 * Return the published result of a piece of work, producing it first if nobody has: at most one
 * `produce` runs at a time for a claim key, across every process sharing the store.
 */
export async function runOnce<T>(params: RunOnceParams<T>): Promise<RunOnceResult<T>> {
  let flights = inFlight.get(params.storage);
  if (!flights) {
    flights = new Map();
    inFlight.set(params.storage, flights);
  }
  const pending = flights.get(params.claimKey);
  if (pending) {
    const shared = (await pending) as RunOnceResult<T>;
    return { value: shared.value, produced: false };
  }
  const p = coordinate(params);
  flights.set(params.claimKey, p);
  try {
    return await p;
  } finally {
    flights.delete(params.claimKey);
  }
}

async function coordinate<T>(params: RunOnceParams<T>): Promise<RunOnceResult<T>> {
  const leaseMs = params.leaseMs ?? 60_000;
  const pollMs = params.pollMs ?? 500;
  const waitMs = params.waitMs ?? 30 * 60_000;
  const deadline = Date.now() + waitMs;
  for (;;) {
    params.signal?.throwIfAborted();
    const found = await params.lookup();
    if (found !== undefined) return { value: found, produced: false };
    const claim = await acquire(params, leaseMs);
    if (claim) {
      try {
        const again = await params.lookup();
        if (again !== undefined) return { value: again, produced: false };
        return { value: await withHeartbeat(params, claim, leaseMs), produced: true };
      } finally {
        await release(params.storage, params.claimKey, claim.token);
      }
    }
    if (Date.now() > deadline) {
      throw new ClaimTimeoutError(`waited ${waitMs} ms for another worker holding '${params.claimKey}' in ${params.storage.location}`, { store: params.storage.location });
    }
    await sleep(pollMs, undefined, { signal: params.signal });
  }
}

function newClaim(): ClaimRecord {
  const now = new Date().toISOString();
  return { token: randomBytes(12).toString('hex'), host: HOST, pid: process.pid, claimedAt: now, heartbeatAt: now };
}

async function acquire<T>(params: RunOnceParams<T>, leaseMs: number): Promise<ClaimRecord | undefined> {
  const { storage, claimKey } = params;
  const existing = await readJson<ClaimRecord>(storage, claimKey);
  if (existing) {
    if (!isStale(existing, leaseMs)) return undefined;
    await storage.delete(claimKey);
  }
  const claim = newClaim();
  const protocol = params.protocol ?? (storage.conditionalWrites ? 'native' : 'settle');
  if (protocol === 'native') {
    const r = await storage.write(claimKey, JSON.stringify(claim), { ifAbsent: true });
    return r.written ? claim : undefined;
  }
  await storage.write(claimKey, JSON.stringify(claim));
  await sleep(params.settleMs ?? 1_000, undefined, { signal: params.signal });
  const back = await readJson<ClaimRecord>(storage, claimKey);
  return back?.token === claim.token ? claim : undefined;
}

async function withHeartbeat<T>(params: RunOnceParams<T>, claim: ClaimRecord, leaseMs: number): Promise<T> {
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(params.signal?.reason);
  params.signal?.addEventListener('abort', onAbort, { once: true });
  let beating = Promise.resolve();
  const timer = setInterval(() => {
    beating = beating.then(async () => {
      const current = await readJson<ClaimRecord>(params.storage, params.claimKey).catch(() => undefined);
      if (current?.token !== claim.token) return;
      await params.storage.write(params.claimKey, JSON.stringify({ ...claim, heartbeatAt: new Date().toISOString() })).catch(() => undefined);
    });
  }, Math.max(10, Math.floor(leaseMs / 3)));
  try {
    return await params.produce({ signal: controller.signal });
  } finally {
    clearInterval(timer);
    params.signal?.removeEventListener('abort', onAbort);
    await beating;
  }
}

async function release(storage: ObjectStorage, key: string, token: string): Promise<void> {
  const current = await readJson<ClaimRecord>(storage, key).catch(() => undefined);
  if (current?.token === token) await storage.delete(key).catch(() => undefined);
}
