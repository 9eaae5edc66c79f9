import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { StorageError } from '../../zoo/errors.js';
import { openS3Storage } from '../../zoo/storage/s3.js';
import { startS3rver, type S3rver } from './s3rver.js';
import { storageContract } from './storage-contract.js';

let server: S3rver;
const stops: (() => Promise<void>)[] = [];
before(async () => {
  server = await startS3rver({ after: (fn) => stops.push(fn) });
});
after(() => Promise.all(stops.map((f) => f())));

async function open(t: { after(fn: () => Promise<void>): void }, conditionalWrites: 'auto' | 'native' | 'settle' = 'auto') {
  const s = await openS3Storage({
    bucket: 'acs-hub',
    prefix: `t-${randomBytes(4).toString('hex')}`,
    endpoint: server.endpoint,
    credentials: server.credentials,
    partSize: 5 * 1024 * 1024,
    conditionalWrites,
  });
  t.after(() => s.close());
  return s;
}

storageContract('s3 (s3rver)', (t) => open(t));

test('s3: the probe finds that s3rver ignores If-None-Match, so claims use the settle protocol', async (t) => {
  const s = await open(t);
  assert.equal(s.conditionalWrites, false);
  assert.equal(await s.probeConditionalWrites(), false);
  const forced = await open(t, 'native');
  assert.equal(forced.conditionalWrites, true);
});

test('s3: keys live under the prefix, and the location says where', async (t) => {
  const s = await open(t);
  assert.match(s.location, /^s3:\/\/acs-hub\/t-[0-9a-f]{8}\/$/);
  await s.write('k', 'v');
  const all = [];
  for await (const o of s.list()) all.push(o.key);
  assert.deepEqual(all, ['k']);
});

test('s3: a request the store refuses is a StorageError carrying the store, with the status', async (t) => {
  const s = await openS3Storage({ bucket: 'no-such-bucket', prefix: 'p', endpoint: server.endpoint, credentials: server.credentials, conditionalWrites: 'settle' });
  t.after(() => s.close());
  await assert.rejects(s.write('k', 'v'), (e: unknown) => {
    assert.ok(e instanceof StorageError, String(e));
    assert.equal(e.store, 's3://no-such-bucket/p/');
    assert.match(e.message, /^S3 PUT 'k' in s3:\/\/no-such-bucket\/p\/ failed \(HTTP 404\)/);
    return true;
  });
});
