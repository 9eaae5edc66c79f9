import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { decodeNifti, encodeNifti, readNiftiFile, readVolume, type Volume } from '../../../inference/volumes/index.js';
import { fixture, prng, tempDir } from '../../helpers.js';
import { assertSameBits } from '../whole-volume.js';

/** The outcome of reading: the volume, or the error's code and message. */
async function outcome(read: () => Promise<Volume>): Promise<Volume | { code: unknown; message: string }> {
  try {
    return await read();
  } catch (err) {
    return { code: (err as { code?: unknown }).code, message: (err as Error).message };
  }
}

/** Streamed from the file and decoded from bytes in memory: the same volume bit for bit, or the same error. */
async function same(path: string, bytes: Uint8Array, what: string, budgets?: { unpackedEntryBytes?: number; compressionRatio?: number }): Promise<void> {
  const file = 'the.nii';
  const streamed = await outcome(() => readNiftiFile(path, { file, budgets }));
  const whole = await outcome(() => decodeNifti(bytes, { file, budgets }));
  if (!('data' in whole) || !('data' in streamed)) {
    assert.deepEqual(streamed, whole, `${what}: the same outcome`);
    return;
  }
  assertSameBits(streamed.data, whole.data, what);
  const { data: _a, ...restStreamed } = streamed;
  const { data: _b, ...restWhole } = whole;
  assert.deepEqual(restStreamed, restWhole, `${what}: shape, geometry and source`);
}

test('every NIfTI fixture, plain and hostile: the streamed reader gives what the in-memory decoder gives', async () => {
  const dirs = [fixture('volumes'), fixture('volumes', 'hostile')];
  let n = 0;
  for (const dir of dirs) {
    for (const name of readdirSync(dir).filter((f) => /\.nii(\.gz)?$/.test(f))) {
      const path = join(dir, name);
      await same(path, readFileSync(path), name);
      n++;
    }
  }
  assert.ok(n >= 20, `${n} files`);
});

test('samples across stream chunks (odd vox_offset, 8-byte samples), scaling, flipped axes, 4D channels, truncation, gzip budgets', async (t) => {
  const dir = await tempDir(t);
  const r = prng(3);
  // 3 channels of 70x61x33 float64: 8.5 MB, chunks of 1 MiB, samples straddling them
  const [c, d, h, w] = [3, 33, 61, 70];
  const data = Float64Array.from({ length: c * d * h * w }, () => r() * 2000 - 1000);
  const affine = [-0.8, 0, 0, 20, 0, 0, 1.5, -10, 0, -1.2, 0, 30, 0, 0, 0, 1];
  const plain = encodeNifti({ data, shape: [c, d, h, w], affine });
  // move the voxels 3 bytes on (vox_offset 355), and scale them
  const odd = new Uint8Array(plain.byteLength + 3);
  odd.set(plain.subarray(0, 352));
  odd.set(plain.subarray(352), 355);
  const view = new DataView(odd.buffer);
  view.setFloat32(108, 355, true);
  view.setFloat32(112, 0.5, true);
  view.setFloat32(116, -3, true);
  for (const [name, bytes] of [
    ['odd.nii', odd],
    ['odd.nii.gz', new Uint8Array(gzipSync(odd))],
    ['plain.nii.gz', new Uint8Array(gzipSync(plain))],
    ['truncated.nii', odd.subarray(0, odd.byteLength - 1001)],
    ['truncated.nii.gz', new Uint8Array(gzipSync(odd.subarray(0, 2_000_003)))],
    ['header only.nii', odd.subarray(0, 200)],
    ['corrupt.nii.gz', (() => { const z = new Uint8Array(gzipSync(odd)); z.fill(7, 5000, 5100); return z; })()],
  ] as const) {
    const path = join(dir, name);
    await writeFile(path, bytes);
    await same(path, bytes, name);
  }
  const streamed = await readVolume(join(dir, 'odd.nii.gz'));
  assert.deepEqual(streamed.shape, [3, 61, 33, 70]);
  assert.equal(streamed.source.file, join(dir, 'odd.nii.gz'), 'named by its path, as readVolume names a file it reads whole');
  // a gzip that would inflate far past the budget: refused from its header, before the volume is allocated
  const zeros = new Uint8Array(gzipSync(encodeNifti({ data: new Uint8Array(256 ** 3), shape: [256, 256, 256], affine: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1] })));
  await writeFile(join(dir, 'bomb.nii.gz'), zeros);
  await same(join(dir, 'bomb.nii.gz'), zeros, 'bomb', {});
  await assert.rejects(readVolume(join(dir, 'bomb.nii.gz')), { code: 'LIMIT_EXCEEDED', message: /compressionRatio/ });
  await assert.rejects(readVolume(join(dir, 'odd.nii.gz'), { budgets: { unpackedEntryBytes: 1_000_000 } }), { code: 'LIMIT_EXCEEDED', message: /unpackedEntryBytes/ });
  assert.equal(gunzipSync(zeros).byteLength, 352 + 256 ** 3);
});
