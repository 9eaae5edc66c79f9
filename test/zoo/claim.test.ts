import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { test } from 'node:test';
import { backoffDelay, parseRetryAfter } from '../../zoo/fetch/backoff.js';
import { checkHashPrefix, hashPrefixFromFilename } from '../../zoo/fetch/hash-prefix.js';
import { IntegrityError, ClaimTimeoutError } from '../../zoo/errors.js';
import { isStale, runOnce, type ClaimRecord } from '../../zoo/storage/claim.js';
import { openLocalStorage } from '../../zoo/storage/local.js';
import { tempDir } from '../helpers.js';

test('claim: under the settle protocol, racing workers on separate store handles still produce once', async (t) => {
  const root = await tempDir(t);
  const stores = await Promise.all(Array.from({ length: 4 }, () => openLocalStorage({ root })));
  let result: string | undefined;
  let runs = 0;
  const outs = await Promise.all(
    stores.map((storage) =>
      runOnce({
        storage,
        claimKey: 'claims/conversion/x',
        protocol: 'settle',
        settleMs: 100,
        pollMs: 10,
        lookup: async () => result,
        produce: async () => {
          runs++;
          await new Promise((r) => setTimeout(r, 50));
          result = 'made';
          return result;
        },
      }),
    ),
  );
  assert.equal(runs, 1);
  assert.deepEqual(outs.map((o) => o.value), ['made', 'made', 'made', 'made']);
  assert.equal(outs.filter((o) => o.produced).length, 1);
});

test('claim: a claim is stale when its heartbeat is older than the lease, or its process is gone from this host', () => {
  const now = Date.now();
  const fresh: ClaimRecord = { token: 't', host: hostname(), pid: process.pid, claimedAt: new Date(now).toISOString(), heartbeatAt: new Date(now).toISOString() };
  assert.equal(isStale(fresh, 1000, now), false);
  assert.equal(isStale({ ...fresh, heartbeatAt: new Date(now - 5000).toISOString() }, 1000, now), true);
  assert.equal(isStale({ ...fresh, pid: 2 ** 22 + 7 }, 60_000, now), true);
  assert.equal(isStale({ ...fresh, host: 'elsewhere', pid: 2 ** 22 + 7 }, 60_000, now), false);
});

test('claim: a waiter gives up after waitMs while a live claim holds', async (t) => {
  const storage = await openLocalStorage({ root: await tempDir(t) });
  const now = new Date().toISOString();
  await storage.write('claims/pull/y', JSON.stringify({ token: 'other', host: 'elsewhere', pid: 1, claimedAt: now, heartbeatAt: now }));
  await assert.rejects(
    runOnce({ storage, claimKey: 'claims/pull/y', waitMs: 50, pollMs: 10, lookup: async () => undefined, produce: async () => 'never' }),
    ClaimTimeoutError,
  );
});

test('hash prefix: found as torch.hub finds it, and checked against the digest', () => {
  assert.equal(hashPrefixFromFilename('resnet18-f37072fd.pth'), 'f37072fd');
  assert.equal(hashPrefixFromFilename('efficientnet_b0_rwightman-7f5810bc.pth'), '7f5810bc');
  assert.equal(hashPrefixFromFilename('mnasnet0.5_top1_67.823-3ffadce67e.pth'), '3ffadce67e');
  assert.equal(hashPrefixFromFilename('model.safetensors'), undefined);
  checkHashPrefix('resnet18-f37072fd.pth', 'f37072fd' + '0'.repeat(56));
  assert.throws(() => checkHashPrefix('resnet18-f37072fd.pth', 'a'.repeat(64)), IntegrityError);
});

test('backoff: exponential, jittered within [d/2, d], capped, and Retry-After honoured', () => {
  assert.equal(backoffDelay({ attempt: 1, baseMs: 100, random: () => 0 }), 50);
  assert.equal(backoffDelay({ attempt: 1, baseMs: 100, random: () => 0.5 }), 75);
  assert.equal(backoffDelay({ attempt: 4, baseMs: 100, random: () => 0 }), 400);
  assert.equal(backoffDelay({ attempt: 30, baseMs: 100, maxMs: 1000, random: () => 1 }), 1000);
  assert.equal(backoffDelay({ attempt: 1, baseMs: 100, retryAfterMs: 700, random: () => 0 }), 700);
  assert.equal(parseRetryAfter('3'), 3000);
  assert.equal(parseRetryAfter(new Date(Date.now() + 10_000).toUTCString())! > 8000, true);
  assert.equal(parseRetryAfter(null), undefined);
});
