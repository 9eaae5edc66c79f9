import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { AcsHubError } from '../../../converters/errors.js';
import { readVolume } from '../../../inference/volumes/index.js';
import { fixture, prng } from '../../helpers.js';

const TARGETS = ['oblique_uint8.nii', 'nifti2_float64.nii', 'bigendian_int32.nii', 'ct_series/IM0000', 'mr_bigendian/IM0000', 'enhanced_ct.dcm', 'array_f4_le.npy', 'fortran_f4.npy', 'v3_cdhw.npy', 'las_float32.nii.gz', 'coronal_implicit.zip'];
const MUTATIONS = 1500;

/** One random corruption: overwrite bytes, truncate, or plant extreme 32-bit values. */
function mutate(src: Uint8Array, rand: () => number): Uint8Array {
  const out = Uint8Array.from(src);
  const at = (): number => Math.floor(rand() * out.length);
  switch (Math.floor(rand() * 3)) {
    case 0:
      for (let i = 0, n = 1 + Math.floor(rand() * 8); i < n; i++) out[at()] = Math.floor(rand() * 256);
      return out;
    case 1:
      return out.subarray(0, at());
    default: {
      // headers and element lengths sit near the start: aim there most of the time
      const p = Math.min(rand() < 0.7 ? Math.floor(rand() * Math.min(out.length, 700)) : at(), Math.max(0, out.length - 4));
      out.set([[0xff, 0xff, 0xff, 0xff], [0xff, 0xff, 0xff, 0x7f], [0, 0, 0, 0x80], [0, 0, 0, 0]][Math.floor(rand() * 4)]!, p);
      return out;
    }
  }
}

for (const name of TARGETS) {
  test(`fuzz: ${MUTATIONS} mutations of ${name} yield a volume or one of the project's typed errors`, async () => {
    const src = readFileSync(fixture('volumes', name));
    const rand = prng(0xacc + name.length);
    for (let i = 0; i < MUTATIONS; i++) {
      const bytes = mutate(src, rand);
      try {
        const v = await readVolume(bytes, { file: name, maxVoxels: 1 << 22 });
        assert.equal(v.data.length, v.shape.reduce((a, b) => a * b, 1));
      } catch (err) {
        if (!(err instanceof AcsHubError)) assert.fail(`mutation ${i} of ${name}: untyped ${String((err as Error).stack ?? err)}`);
      }
    }
  });
}
