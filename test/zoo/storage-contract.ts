/**
 * The one contract every storage backend passes (run against local disk and against a real
 * S3-protocol server): round trips, ranges, listing, atomic and conditional writes, failures
 * that leave nothing partial behind.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { ObjectNotFoundError } from '../../zoo/errors.js';
import type { ClaimRecord } from '../../zoo/storage/claim.js';
import { claimKey, conversionPrefix } from '../../zoo/store.js';
import { readAll, type ObjectStorage } from '../../zoo/storage/storage.js';
import { sweepDebris } from '../../zoo/sweep-debris.js';

/** Makes a fresh, empty store for one test. */
export type StorageFactory = (t: { after(fn: () => Promise<void>): void }) => Promise<ObjectStorage>;

async function keys(storage: ObjectStorage, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for await (const o of storage.list(prefix)) out.push(o.key);
  return out.sort();
}

function sha(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** A stream that yields `good` bytes, then fails. */
function failingStream(good: Buffer): Readable {
  let sent = false;
  return new Readable({
    read() {
      if (!sent) {
        sent = true;
        this.push(good);
      } else {
        this.destroy(new Error('source failed half-way'));
      }
    },
  });
}

/** Register the contract's tests for one backend. */
export function storageContract(name: string, make: StorageFactory, opts: { largeBytes?: number } = {}): void {
  test(`${name}: write, stat, has, read and delete round-trip bytes, strings and streams`, async (t) => {
    const s = await make(t);
    const bytes = randomBytes(1000);
    assert.deepEqual(await s.write('a/bytes.bin', bytes), { written: true, size: 1000 });
    assert.deepEqual(await s.write('a/text.json', '{"x":1}'), { written: true, size: 7 });
    assert.deepEqual(await s.write('a/stream.bin', Readable.from([bytes.subarray(0, 300), bytes.subarray(300)])), { written: true, size: 1000 });
    assert.ok(await s.has('a/bytes.bin'));
    assert.equal((await s.stat('a/stream.bin'))?.size, 1000);
    assert.ok((await s.stat('a/stream.bin'))?.modified instanceof Date);
    assert.deepEqual(await readAll(s, 'a/bytes.bin'), bytes);
    assert.deepEqual(await readAll(s, 'a/stream.bin'), bytes);
    assert.equal((await readAll(s, 'a/text.json')).toString(), '{"x":1}');
    await s.delete('a/bytes.bin');
    assert.equal(await s.has('a/bytes.bin'), false);
    assert.equal(await s.stat('a/bytes.bin'), undefined);
    await s.delete('a/bytes.bin');
  });

  test(`${name}: ranged reads return exactly the bytes asked for`, async (t) => {
    const s = await make(t);
    const bytes = randomBytes(4096);
    await s.write('r/x', bytes);
    assert.deepEqual(await readAll(s, 'r/x', { range: { start: 100, end: 199 } }), bytes.subarray(100, 200));
    assert.deepEqual(await readAll(s, 'r/x', { range: { start: 4000 } }), bytes.subarray(4000));
    assert.deepEqual(await readAll(s, 'r/x', { range: { start: 4090, end: 9999 } }), bytes.subarray(4090));
    await assert.rejects(s.read('r/x', { range: { start: 5000 } }), RangeError);
    await assert.rejects(s.read('r/x', { range: { start: 10, end: 5 } }), RangeError);
  });

  test(`${name}: a missing object is an ObjectNotFoundError, and bad keys are refused`, async (t) => {
    const s = await make(t);
    await assert.rejects(s.read('no/such'), (e: unknown) => e instanceof ObjectNotFoundError && e.code === 'OBJECT_NOT_FOUND' && e.key === 'no/such');
    for (const bad of ['', '/abs', 'a//b', '../up', 'a/./b', 'a/.hidden', 'sp ace', 'x/'.repeat(600)]) {
      await assert.rejects(s.write(bad, 'x'), RangeError, bad);
    }
  });

  test(`${name}: list finds every object under a prefix, and nothing else`, async (t) => {
    const s = await make(t);
    for (const k of ['blobs/sha256/aa', 'blobs/sha256/bb', 'blobs/other', 'index/sources/x.json', 'blobsz']) await s.write(k, k);
    assert.deepEqual(await keys(s, 'blobs/'), ['blobs/other', 'blobs/sha256/aa', 'blobs/sha256/bb']);
    assert.deepEqual(await keys(s, 'blobs/sha256/'), ['blobs/sha256/aa', 'blobs/sha256/bb']);
    assert.deepEqual(await keys(s, 'blobs'), ['blobs/other', 'blobs/sha256/aa', 'blobs/sha256/bb', 'blobsz']);
    assert.deepEqual(await keys(s), ['blobs/other', 'blobs/sha256/aa', 'blobs/sha256/bb', 'blobsz', 'index/sources/x.json']);
    const info = [];
    for await (const o of s.list('index/')) info.push(o);
    assert.equal(info[0]?.size, 'index/sources/x.json'.length);
  });

  test(`${name}: an overwrite replaces the whole object`, async (t) => {
    const s = await make(t);
    await s.write('o/k', randomBytes(5000));
    const second = randomBytes(10);
    await s.write('o/k', second);
    assert.deepEqual(await readAll(s, 'o/k'), second);
  });

  test(`${name}: a source that fails half-way leaves nothing (and no older version is harmed)`, async (t) => {
    const s = await make(t);
    await assert.rejects(s.write('f/new', failingStream(randomBytes(2000))), /half-way/);
    assert.equal(await s.has('f/new'), false);
    assert.deepEqual(await keys(s, 'f/'), []);
    const old = randomBytes(100);
    await s.write('f/old', old);
    await assert.rejects(s.write('f/old', failingStream(randomBytes(2000))), /half-way/);
    assert.deepEqual(await readAll(s, 'f/old'), old);
  });

  test(`${name}: an aborted write leaves nothing`, async (t) => {
    const s = await make(t);
    const controller = new AbortController();
    let n = 0;
    const slow = new Readable({
      read() {
        if (++n === 3) controller.abort();
        setTimeout(() => this.push(randomBytes(1000)), 5);
      },
    });
    await assert.rejects(s.write('ab/x', slow, { signal: controller.signal }));
    assert.equal(await s.has('ab/x'), false);
    assert.deepEqual(await keys(s, 'ab/'), []);
  });

  test(`${name}: ifAbsent writes only when the key is free`, async (t) => {
    const s = await make(t);
    assert.deepEqual(await s.write('c/claim', 'first', { ifAbsent: true }), { written: true, size: 5 });
    assert.deepEqual(await s.write('c/claim', 'second', { ifAbsent: true }), { written: false, size: 0 });
    assert.deepEqual(await s.write('c/stream', Readable.from([Buffer.from('zz')]), { ifAbsent: true }), { written: true, size: 2 });
    assert.equal((await s.write('c/stream', Readable.from([Buffer.from('yy')]), { ifAbsent: true })).written, false);
    assert.equal((await readAll(s, 'c/claim')).toString(), 'first');
    if (s.conditionalWrites) {
      const results = await Promise.all(Array.from({ length: 8 }, (_, i) => s.write('c/race', `w${i}`, { ifAbsent: true })));
      assert.equal(results.filter((r) => r.written).length, 1, 'exactly one conditional writer wins');
    }
  });

  const large = opts.largeBytes ?? 12 * 1024 * 1024;
  test(`${name}: a ${Math.round(large / 1048576)} MB object round-trips intact`, async (t) => {
    const s = await make(t);
    const bytes = randomBytes(large);
    const chunks = Array.from({ length: Math.ceil(large / 65536) }, (_, i) => bytes.subarray(i * 65536, (i + 1) * 65536));
    assert.equal((await s.write('big/x', Readable.from(chunks))).size, large);
    assert.equal((await s.stat('big/x'))?.size, large);
    assert.equal(sha(await readAll(s, 'big/x')), sha(bytes));
    assert.deepEqual(await readAll(s, 'big/x', { range: { start: large - 10 } }), bytes.subarray(large - 10));
  });

  test(`${name}: the sweep removes conversion outputs without a card once old enough, never under a live claim, and nothing else`, async (t) => {
    const s = await make(t);
    const prefixOf = (mode: string) => conversionPrefix({ sourceSha256: 'a'.repeat(64), mode, options: {}, converterVersion: 'test' });
    const [orphan, complete, claimed, staleClaim] = ['orphan', 'complete', 'claimed', 'stale'].map(prefixOf) as [string, string, string, string];
    for (const p of [orphan, complete, claimed, staleClaim]) await s.write(`${p}model.bin`, randomBytes(100));
    await s.write(`${complete}manifest.json`, '{}');
    await s.write('blobs/sha256/x', 'source');
    const bound = 60_000;
    const later = Date.now() + 2 * bound;
    const claim = (heartbeat: number): ClaimRecord => ({ token: 't', host: 'another-replica', pid: 1, claimedAt: new Date(0).toISOString(), heartbeatAt: new Date(heartbeat).toISOString() });
    await s.write(claimKey('conversion', claimed), JSON.stringify(claim(later - 1_000)));
    await s.write(claimKey('conversion', staleClaim), JSON.stringify(claim(later - 2 * bound)));
    const all = async () => {
      const out: string[] = [];
      for await (const o of s.list()) out.push(o.key);
      return out.sort();
    };
    const before = await all();

    const young = await sweepDebris({ storage: s, olderThanMs: bound, leaseMs: 10_000 });
    assert.deepEqual(young, { staging: [], temporaries: [], orphans: [], kept: [] }, 'nothing is old enough yet');
    assert.deepEqual(await s.sweepTemporaries({ before: new Date(later), keep: async () => false }), [], 'no temporaries: nothing was interrupted');
    assert.deepEqual(await all(), before);

    const swept = await sweepDebris({ storage: s, olderThanMs: bound, leaseMs: 10_000, now: later });
    assert.deepEqual(swept.orphans.sort(), [`${orphan}model.bin`, `${staleClaim}model.bin`].sort());
    assert.deepEqual(swept.kept, [claimed]);
    assert.deepEqual(await all(), before.filter((k) => !swept.orphans.includes(k)));
  });
}
