import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { AcsHubError } from '../../../converters/errors.js';
import { readVolume, type ReadVolumeParams } from '../../../inference/volumes/index.js';
import { assertClose, fixture, sha256 } from '../../helpers.js';

interface Expected {
  shape: number[];
  spacing: number[];
  affine: number[];
  sum: number;
  sha256: string;
  samples: { index: number[]; value: number }[];
  format: string;
  modality?: string;
  path?: string;
  params?: ReadVolumeParams;
  error?: string;
  series?: string[];
}

const expected = JSON.parse(readFileSync(fixture('volumes', 'expected.json'), 'utf8')) as Record<string, Expected>;

for (const [name, exp] of Object.entries(expected)) {
  const path = fixture('volumes', exp.path ?? name);
  if (exp.error !== undefined) {
    test(`refuses ${name} with ${exp.error}`, async () => {
      await assert.rejects(readVolume(path, exp.params), (err: unknown) => {
        assert.ok(err instanceof AcsHubError, String(err));
        assert.equal(err.code, exp.error, err.message);
        for (const uid of exp.series ?? []) assert.ok(err.message.includes(uid), `message lists ${uid}: ${err.message}`);
        return true;
      });
    });
    continue;
  }
  test(`reads ${name} as nibabel/NumPy put it in RAS+ [C, D, H, W]`, async () => {
    const v = await readVolume(path, exp.params);
    assert.equal(v.source.format, exp.format);
    assert.deepEqual(v.shape, exp.shape, 'shape');
    assertClose(v.spacing, exp.spacing, { atol: 1e-5, what: 'spacing' });
    assertClose(v.affine, exp.affine, { atol: 1e-4, what: 'affine' });
    for (const s of exp.samples) {
      const [c, d, h, w] = s.index as [number, number, number, number];
      const at: number = ((c * v.shape[1] + d) * v.shape[2] + h) * v.shape[3] + w;
      assert.equal(v.data[at], s.value, `voxel [${s.index.join(', ')}]`);
    }
    let sum = 0;
    for (const x of v.data) sum += x;
    assertClose([sum], [exp.sum], { rtol: 1e-6, atol: 1e-3, what: 'sum' });
    const le = new Uint8Array(v.data.buffer, v.data.byteOffset, v.data.byteLength);
    assert.equal(sha256(le), exp.sha256, 'every voxel, bit for bit');
    if (exp.modality !== undefined) assert.equal(v.modality, exp.modality);
  });
}

test('reads a file passed as bytes the same as by path', async () => {
  const path = fixture('volumes', 'oblique_uint8.nii');
  const a = await readVolume(path);
  const b = await readVolume(readFileSync(path), { file: 'oblique_uint8.nii' });
  assert.deepEqual(b.shape, a.shape);
  assert.deepEqual(b.affine, a.affine);
  assert.deepEqual(b.data, a.data);
});

test('records the file grid so that outputs can go back to it', async () => {
  const v = await readVolume(fixture('volumes', 'oblique_uint8.nii'));
  const grid = v.source.grid!;
  assert.deepEqual(grid.dims, [7, 9, 5]);
  assert.deepEqual([...grid.axes].sort(), [0, 1, 2]);
  assert.equal(v.source.nifti?.affineFrom, 'sform');
});

test('mixed series: the error lists each series with its file count', async () => {
  await assert.rejects(readVolume(fixture('volumes', 'mixed_series')), (err: any) => {
    assert.equal(err.code, 'VOLUME_MIXED_SERIES');
    assert.equal(err.series.length, 2);
    assert.deepEqual(err.series.map((s: any) => s.files).sort(), [2, 3]);
    assert.match(err.message, /"first"/);
    return true;
  });
  await assert.rejects(readVolume(fixture('volumes', 'mixed_series'), { seriesInstanceUid: '1.2.3' }), { code: 'INVALID_ARGUMENT' });
});

test('a smaller voxel limit refuses a volume before reading it', async () => {
  await assert.rejects(readVolume(fixture('volumes', 'ras_int16.nii'), { maxVoxels: 100 }), { code: 'LIMIT_EXCEEDED' });
  await assert.rejects(readVolume(fixture('volumes', 'ct_series'), { maxVoxels: 100 }), { code: 'LIMIT_EXCEEDED' });
  await assert.rejects(readVolume(fixture('volumes', 'stack16.tif'), { maxVoxels: 100 }), { code: 'LIMIT_EXCEEDED' });
  await assert.rejects(readVolume(fixture('volumes', 'png_slices'), { maxVoxels: 100 }), { code: 'LIMIT_EXCEEDED' });
});

test('raw needs a shape, and its size must match', async () => {
  const path = fixture('volumes', 'volume_3x4x5.raw');
  await assert.rejects(readVolume(path), { code: 'INVALID_ARGUMENT' });
  await assert.rejects(readVolume(path, { raw: { shape: [3, 4, 6] } }), (err: any) => err.code === 'VOLUME_FORMAT' && err.message.includes('needs exactly'));
});

test('a transfer syntax named like a property every object has is unknown, not taken for a known one', async () => {
  const bytes = readFileSync(fixture('volumes', 'ct_series', 'IM0000'));
  const at = bytes.indexOf('1.2.840.10008.1.2.1\0');
  assert.ok(at > 0, 'the fixture carries Explicit VR Little Endian');
  for (const uid of ['toString', 'constructor', '__proto__']) {
    const hostile = Buffer.from(bytes);
    hostile.write(uid.padEnd(20, '\0'), at, 'latin1');
    await assert.rejects(readVolume(hostile, { file: 'IM0000' }), (e: unknown) => e instanceof AcsHubError && e.code === 'VOLUME_UNSUPPORTED' && e.message.endsWith(`unknown transfer syntax ${uid}`));
  }
});
