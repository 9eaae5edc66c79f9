import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { StorageError } from '../../zoo/errors.js';
import { openLocalStorage } from '../../zoo/storage/local.js';
import { readAll } from '../../zoo/storage/storage.js';
import { tempDir } from '../helpers.js';
import { storageContract } from './storage-contract.js';

storageContract('local', async (t) => openLocalStorage({ root: await tempDir(t) }));

test('local: temporaries older than the bound are swept, whatever their pid; younger ones and vetoed ones stay; none is ever listed', async (t) => {
  const root = await tempDir(t);
  await mkdir(join(root, 'blobs'), { recursive: true });
  const child = spawn(process.execPath, ['-e', '0']);
  await once(child, 'exit');
  const deadYoung = `.x.tmp-${child.pid}-0123456789ab`;
  const liveYoung = `.y.tmp-${process.pid}-0123456789ab`;
  const old = `.z.tmp-${process.pid}-0123456789ac`;
  const vetoed = `.v.tmp-${child.pid}-0123456789ad`;
  for (const f of [deadYoung, liveYoung, old, vetoed]) await writeFile(join(root, 'blobs', f), 'partial');
  for (const f of [old, vetoed]) await utimes(join(root, 'blobs', f), new Date(0), new Date(0));
  await writeFile(join(root, 'blobs', 'done'), 'whole');
  await utimes(join(root, 'blobs', 'done'), new Date(0), new Date(0));
  const s = await openLocalStorage({ root });
  assert.equal((await readdir(join(root, 'blobs'))).length, 5, 'opening removes nothing');
  const asked: string[] = [];
  const removed = await s.sweepTemporaries({ before: new Date(Date.now() - 3_600_000), keep: async (key) => (asked.push(key), key === 'blobs/v') });
  assert.deepEqual(removed, [`blobs/z (${old})`]);
  assert.deepEqual(asked.sort(), ['blobs/v', 'blobs/z']);
  assert.deepEqual((await readdir(join(root, 'blobs'))).sort(), [deadYoung, liveYoung, vetoed, 'done'].sort());
  const listed = [];
  for await (const o of s.list()) listed.push(o.key);
  assert.deepEqual(listed, ['blobs/done']);
});

test('local: over its budget the least recently read objects go first, never one being read', async (t) => {
  const root = await tempDir(t);
  // A clock that moves one second per look, so the order of reads is the order of the calls.
  let clock = Date.parse('2026-01-01T00:00:00Z');
  const s = await openLocalStorage({ root, maxBytes: 3500, now: () => (clock += 1000) });
  await s.write('blobs/a', Buffer.alloc(1000, 1));
  await s.write('blobs/b', Buffer.alloc(1000, 2));
  await s.write('blobs/c', Buffer.alloc(1000, 3));
  await readAll(s, 'blobs/a');
  const reading = await s.read('blobs/b');
  await s.write('index/sources/x.json', Buffer.alloc(500));
  await s.write('blobs/d', Buffer.alloc(1000, 4));
  // b is oldest-but-open and index/ is never evicted: c goes.
  assert.equal(await s.has('blobs/c'), false);
  assert.ok(await s.has('blobs/a'));
  assert.ok(await s.has('blobs/b'));
  assert.ok(await s.has('index/sources/x.json'));
  const chunks: Buffer[] = [];
  for await (const c of reading) chunks.push(c as Buffer);
  assert.deepEqual(Buffer.concat(chunks), Buffer.alloc(1000, 2));
  await s.write('blobs/e', Buffer.alloc(1000, 5));
  assert.equal(await s.has('blobs/a'), false, 'a was read before b was');
  await s.write('blobs/f', Buffer.alloc(1000, 6));
  assert.equal(await s.has('blobs/b'), false, 'once closed, b is evictable again');
  assert.ok(await s.has('blobs/d'));
});

test('local: a file the disk refuses is a StorageError that carries the store, whatever step refused it', async (t) => {
  const root = await tempDir(t);
  const s = await openLocalStorage({ root });
  // A valid key whose temporary name is longer than the 255 bytes a file name may have.
  const key = `blobs/${'x'.repeat(240)}`;
  const stream = Readable.from([Buffer.from('bytes')]);
  await assert.rejects(s.write(key, stream), (e: unknown) => {
    assert.ok(e instanceof StorageError, String(e));
    assert.equal(e.code, 'STORAGE_FAILED');
    assert.equal(e.store, root);
    assert.match(e.message, /ENAMETOOLONG/);
    return true;
  });
  assert.ok(stream.destroyed, 'the body is not left half read');
  // A file where a directory must be: another step, the same kind of error.
  await writeFile(join(root, 'index'), 'not a directory');
  await assert.rejects(s.write('index/a', 'x'), (e: unknown) => e instanceof StorageError && e.store === root && /EEXIST/.test(e.message));
});
