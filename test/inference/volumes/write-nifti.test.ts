import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { encodeNifti, encodeNpy, readVolume, writeNifti, writeNpy } from '../../../inference/volumes/index.js';
import { assertClose, fixture, prng, sha256, tempDir } from '../../helpers.js';

// The same outputs as tools/fixtures/write_volume_outputs.mjs, whose files nibabel checked
// (tools/fixtures/verify_volume_outputs.py) and recorded by sha256.
const verified = JSON.parse(readFileSync(fixture('volumes', 'nibabel-verified.json'), 'utf8')) as Record<string, string>;
const INPUTS = ['oblique_uint8.nii', 'qform_int32.nii', 'ras_int16.nii', 'bigendian_int32.nii', 'pixdim_only_int16.nii'];
const labelOf = (v: number): number => ((Math.round(v) % 3) + 3) % 3;

for (const name of INPUTS) {
  test(`label map for ${name} is byte for byte what nibabel verified (input grid and canonical)`, async () => {
    const v = await readVolume(fixture('volumes', name));
    const base = { data: Uint8Array.from(v.data, labelOf), shape: v.shape.slice(1), affine: v.affine, labels: true };
    assert.equal(sha256(encodeNifti({ ...base, like: v })), verified[`${name}.like.nii`]);
    assert.equal(sha256(encodeNifti(base)), verified[`${name}.canonical.nii`]);
    assert.equal(sha256(gunzipSync(encodeNifti({ ...base, like: v, gzip: true }))), verified[`${name}.like.nii`]);
  });
}

test('written files read back to the same canonical array and affine', async (t) => {
  const dir = await tempDir(t);
  for (const name of ['oblique_uint8.nii', '4d_uint16.nii.gz', 'las_float32.nii.gz']) {
    const v = await readVolume(fixture('volumes', name));
    for (const like of [undefined, v]) {
      const path = join(dir, `${name}.${like ? 'like' : 'canonical'}.nii.gz`);
      await writeNifti({ path, data: v.data, shape: v.shape, affine: v.affine, ...(like ? { like } : {}) });
      assert.equal(readFileSync(path)[0], 0x1f, 'gzipped by extension');
      const back = await readVolume(path);
      assert.deepEqual(back.shape, v.shape);
      assertClose(back.affine, v.affine, { atol: 1e-4, what: `${name} affine` });
      assert.deepEqual(back.data, v.data);
      if (like) assert.deepEqual(back.source.grid?.dims, v.source.grid?.dims);
    }
  }
});

test("refuses to write with 'like' an output that is not on the input's grid", async () => {
  const v = await readVolume(fixture('volumes', 'ras_int16.nii'));
  assert.throws(() => encodeNifti({ data: new Uint8Array(8), shape: [2, 2, 2], affine: v.affine, like: v }), { code: 'INVALID_ARGUMENT' });
  const moved = [...v.affine];
  moved[3]! += 5;
  assert.throws(() => encodeNifti({ data: new Uint8Array(v.data.length), shape: v.shape.slice(1), affine: moved, like: v }), /not on the input's grid/);
  assert.throws(() => encodeNifti({ data: new Uint8Array(3), shape: [2, 2, 2], affine: v.affine }), { code: 'INVALID_ARGUMENT' });
});

test('npy writer: float32 .npy that the reader (checked against NumPy files) reads back', async (t) => {
  const r = prng(5);
  const data = Float32Array.from({ length: 2 * 3 * 4 * 5 }, () => r() - 0.5);
  const bytes = encodeNpy({ data, shape: [2, 3, 4, 5] });
  assert.equal(new TextDecoder().decode(bytes.subarray(1, 6)), 'NUMPY');
  assert.equal((10 + new DataView(bytes.buffer).getUint16(8, true)) % 64, 0, 'header padded to 64 bytes');
  const path = join(await tempDir(t), 'out.npy');
  await writeNpy({ path, data, shape: [2, 3, 4, 5] });
  const back = await readVolume(path);
  assert.deepEqual(back.shape, [2, 3, 4, 5]);
  assert.deepEqual(back.data, data);
  assert.match(new TextDecoder().decode(encodeNpy({ data: new Float32Array(3), shape: [3] }).subarray(10, 70)), /'shape': \(3,\)/);
  assert.throws(() => encodeNpy({ data, shape: [2, 3] }), { code: 'INVALID_ARGUMENT' });
});
