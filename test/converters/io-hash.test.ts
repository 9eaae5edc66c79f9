/** sha256 of checkpoints of any size: a hash's `update` takes under 2 GiB at a time. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { sha256Hex } from '../../converters/io.js';

test('sha256Hex equals one-call sha256 across its chunk boundaries', () => {
  const bytes = new Uint8Array(150 * 1024 * 1024 + 7);
  for (let i = 0; i < bytes.length; i += 4093) bytes[i] = i & 0xff;
  assert.equal(sha256Hex(bytes), createHash('sha256').update(bytes).digest('hex'));
  assert.equal(sha256Hex(new Uint8Array(0)), createHash('sha256').digest('hex'));
});

test('sha256Hex hashes more than 2 GiB (regnet_y_128gf is a 2.6 GB file), as the hash of its two halves in a row', () => {
  const bytes = new Uint8Array(2 ** 31 + 3);
  bytes[0] = 1;
  bytes[bytes.length - 1] = 2;
  const half = 2 ** 30;
  const expected = createHash('sha256').update(bytes.subarray(0, half)).update(bytes.subarray(half)).digest('hex');
  assert.throws(() => createHash('sha256').update(bytes), /too long|out of range/i, 'one call is refused by node');
  assert.equal(sha256Hex(bytes), expected);
});
