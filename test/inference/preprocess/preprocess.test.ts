import assert from 'node:assert/strict';
import { test } from 'node:test';
import { matchChannels, normalizeChannels, padOrCrop, resample, scaleIntensity, stackBatch, windowIntensity } from '../../../inference/preprocess/index.js';
import { applyAffine, readVolume, type Volume } from '../../../inference/volumes/index.js';
import { assertClose, fixture, prng } from '../../helpers.js';

const npy = (name: string): Promise<Volume> => readVolume(fixture('volumes', 'preprocess', name));

function randomVolume(shape: [number, number, number, number], seed = 1): Volume {
  const r = prng(seed);
  const data = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => r() * 200 - 100);
  // slightly oblique, so that a wrong column order would show
  const affine = [0.7, 0.05, 0, 10, 0, 0.8, 0.1, 20, -0.02, 0, 2.5, -5, 0, 0, 0, 1];
  return { data, shape, spacing: [2.5, 0.8, 0.7], affine, source: { format: 'npy', file: 'mem', channels: 'single', warnings: [] } };
}

test('trilinear resampling matches torch interpolate(align_corners=False)', async () => {
  const input = await npy('resample_input.npy');
  for (const [name, size] of [['trilinear_8x4x9.npy', [8, 4, 9]], ['trilinear_3x11x7.npy', [3, 11, 7]]] as const) {
    const ref = await npy(name);
    const out = resample({ volume: input, size, mode: 'trilinear' });
    assert.deepEqual(out.shape, ref.shape);
    assertClose(out.data, ref.data, { atol: 1e-5, rtol: 1e-5, what: name });
  }
});

test("nearest resampling of labels matches torch interpolate(mode='nearest-exact')", async () => {
  const out = resample({ volume: await npy('labels_input.npy'), size: [9, 4, 10], mode: 'nearest' });
  const ref = await npy('nearest_9x4x10.npy');
  assert.deepEqual(out.shape, ref.shape);
  assert.deepEqual(out.data, ref.data);
});

test('resampling keeps the field of view: the grid corner stays where it was in mm', () => {
  const v = randomVolume([1, 6, 10, 12]);
  const out = resample({ volume: v, spacing: [1, 1, 1] });
  assert.deepEqual(out.shape, [1, 15, 8, 8]);
  assertClose(out.spacing, [(2.5 * 6) / 15, (0.8 * 10) / 8, (0.7 * 12) / 8], { what: 'spacing (recorded from the input spacing)' });
  assertClose(applyAffine(out.affine, [-0.5, -0.5, -0.5]), applyAffine(v.affine, [-0.5, -0.5, -0.5]), { what: 'corner' });
  assertClose(applyAffine(out.affine, [7.5, 7.5, 14.5]), applyAffine(v.affine, [11.5, 9.5, 5.5]), { what: 'far corner' });
  // and back to the input grid: same affine
  const back = resample({ volume: out, size: [6, 10, 12] });
  assertClose(back.affine, v.affine, { atol: 1e-9, what: 'affine after the round trip' });
  assert.throws(() => resample({ volume: v }), { code: 'INVALID_ARGUMENT' });
  assert.throws(() => resample({ volume: v, size: [0, 1, 1] }), { code: 'INVALID_ARGUMENT' });
});

test('CT windowing clips to [lo, hi] HU and scales to [0, 1]', () => {
  const v = { data: Float32Array.from([-2000, -1000, -300, 400, 3000]), shape: [1, 1, 1, 5] as const };
  assertClose(windowIntensity({ volume: v, window: [-1000, 400] }).data, [0, 0, 0.5, 1, 1]);
  assertClose(windowIntensity({ volume: v }).data, [0, 0, 0.5, 1, 1], { what: 'default lung window' });
  assertClose(windowIntensity({ volume: v, window: 'brain', range: [-1, 1] }).data, [-1, -1, -1, 1, 1]);
  assert.throws(() => windowIntensity({ volume: v, window: [5, 5] }), { code: 'INVALID_ARGUMENT' });
  assert.throws(() => windowIntensity({ volume: v, window: 'nope' as 'lung' }), { code: 'INVALID_ARGUMENT' });
});

test('min-max and percentile scaling, per channel', () => {
  const v = { data: Float32Array.from([0, 5, 10, 100, 200, 300]), shape: [2, 1, 1, 3] as const };
  assertClose(scaleIntensity({ volume: v }).data, [0, 0.5, 1, 0, 0.5, 1]);
  assertClose(scaleIntensity({ volume: v, perChannel: false }).data, [0, 5 / 300, 10 / 300, 1 / 3, 2 / 3, 1]);
  const ramp = { data: Float32Array.from({ length: 101 }, (_, i) => i), shape: [1, 1, 1, 101] as const };
  const p = scaleIntensity({ volume: ramp, percentiles: [10, 90] }).data;
  assertClose([p[0]!, p[10]!, p[50]!, p[90]!, p[100]!], [0, 0, 0.5, 1, 1]);
});

test('per-channel mean/std normalisation: given values or the channel\'s own', () => {
  const v = { data: Float32Array.from([1, 2, 3, 4, 10, 20, 30, 40]), shape: [2, 1, 2, 2] as const };
  assertClose(normalizeChannels({ volume: v, mean: [2, 20], std: [2, 10] }).data, [-0.5, 0, 0.5, 1, -1, 0, 1, 2]);
  const own = normalizeChannels({ volume: v }).data;
  const s = Math.sqrt(1.25);
  assertClose(own, [-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s, -1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s]);
  assert.throws(() => normalizeChannels({ volume: v, mean: [1, 2, 3] }), { code: 'INVALID_ARGUMENT' });
  assert.throws(() => normalizeChannels({ volume: { data: new Float32Array(4), shape: [1, 1, 2, 2] } }), /std/);
});

test('channels: 1 -> 3 replicated for an RGB stem, 1 kept for an adapted stem', () => {
  const v = randomVolume([1, 2, 3, 4]);
  const three = matchChannels({ volume: v, channels: 3 });
  assert.deepEqual(three.shape, [3, 2, 3, 4]);
  for (let c = 0; c < 3; c++) assert.deepEqual(three.data.subarray(c * 24, (c + 1) * 24), v.data);
  assert.equal(matchChannels({ volume: v, channels: 1 }), v);
  assert.throws(() => matchChannels({ volume: three, channels: 2 }), { code: 'INVALID_ARGUMENT' });
  assert.deepEqual(matchChannels({ volume: three, channels: 1, reduce: 'mean' }).shape, [1, 2, 3, 4]);
});

test('centre pad/crop moves the affine with the grid and pad-then-crop is exact', () => {
  const v = randomVolume([2, 5, 4, 7]);
  const out = padOrCrop({ volume: v, size: [8, 3, 7], value: -1024 });
  assert.deepEqual(out.shape, [2, 8, 3, 7]);
  // d: 5 -> 8 pads 1 before; h: 4 -> 3 crops from 0; w: 7 -> 7 unchanged
  const at = (vol: Volume, c: number, d: number, h: number, w: number): number => vol.data[((c * vol.shape[1] + d) * vol.shape[2] + h) * vol.shape[3] + w]!;
  assert.equal(at(out, 1, 2 + 1, 1 - 0, 3), at(v, 1, 2, 1, 3));
  assert.equal(at(out, 0, 0, 0, 0), -1024);
  assertClose(applyAffine(out.affine, [3, 1, 3]), applyAffine(v.affine, [3, 1, 2]), { what: 'world position of a voxel' });
  const back = padOrCrop({ volume: padOrCrop({ volume: v, size: [9, 10, 12] }), size: [5, 4, 7] });
  assert.deepEqual(back.data, v.data);
  assertClose(back.affine, v.affine, { atol: 0 });
});

test('batching volumes of one shape into N, C, D, H, W', () => {
  const a = randomVolume([1, 2, 2, 2], 1);
  const b = randomVolume([1, 2, 2, 2], 2);
  const batch = stackBatch({ volumes: [a, b] });
  assert.deepEqual(batch.shape, [2, 1, 2, 2, 2]);
  assert.deepEqual(batch.data.subarray(8), b.data);
  assert.throws(() => stackBatch({ volumes: [a, randomVolume([1, 2, 2, 3])] }), { code: 'INVALID_ARGUMENT' });
  assert.throws(() => stackBatch({ volumes: [] }), { code: 'INVALID_ARGUMENT' });
});
