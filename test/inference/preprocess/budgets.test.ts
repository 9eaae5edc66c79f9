import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_BUDGETS } from '../../../converters/budgets.js';
import { AcsHubError, LimitExceededError } from '../../../converters/errors.js';
import { checkOutputVoxels, matchChannels, padOrCrop, resample, resampleSize, slidingWindow, type WindowOutput } from '../../../inference/preprocess/index.js';
import type { Volume } from '../../../inference/volumes/index.js';

function volume(shape: [number, number, number, number], spacing: [number, number, number] = [1, 1, 1]): Volume {
  const data = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i));
  const affine = [spacing[2], 0, 0, 0, 0, spacing[1], 0, 0, 0, 0, spacing[0], 0, 0, 0, 0, 1];
  return { data, shape, spacing, affine, source: { format: 'npy', file: 'mem', channels: 'single', warnings: [] } };
}

/** The refusal of a budget: 413 LIMIT_EXCEEDED, naming its setting. */
function refusedBy(setting: string, ...mentions: string[]) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof AcsHubError, `expected a typed error, got ${String(err)}`);
    assert.equal(err.code, 'LIMIT_EXCEEDED', err.message);
    assert.equal(err.code, 'LIMIT_EXCEEDED');
    assert.ok(err.message.includes(`budgets.${setting}`), `'${err.message}' names budgets.${setting}`);
    for (const m of mentions) assert.ok(err.message.includes(m), `'${err.message}' mentions '${m}'`);
    return true;
  };
}

test('the default budgets let a 512x512x600 CT through to a typical input, and refuse 800^3', () => {
  const ct = { shape: [1, 600, 512, 512] as const, spacing: [1, 0.7, 0.7] as [number, number, number] };
  assert.equal(checkOutputVoxels([1, 600, 512, 512], 'the CT as it is, one channel'), 157_286_400);
  const typical = resampleSize(ct, { spacing: [1.5, 1.5, 1.5] });
  assert.deepEqual(typical, [400, 239, 239]);
  checkOutputVoxels([3, ...typical], 'the CT at 1.5 mm, three channels');
  assert.throws(() => checkOutputVoxels([1, 800, 800, 800], 'size=800,800,800'), refusedBy('outputVoxels', '512000000', String(DEFAULT_BUDGETS.outputVoxels)));
  assert.throws(() => checkOutputVoxels([3, 600, 512, 512], 'the CT replicated to three channels'), refusedBy('outputVoxels'));
});

test('resample: the output size is held against budgets.outputVoxels before it is allocated', () => {
  const v = volume([1, 4, 5, 6]);
  // 1e15 voxels: an allocation would throw a RangeError, not a LIMIT_EXCEEDED
  assert.throws(() => resample({ volume: v, size: [100_000, 100_000, 100_000] }), refusedBy('outputVoxels', '100000x100000x100000'));
  assert.throws(() => resample({ volume: v, size: [800, 800, 800] }), refusedBy('outputVoxels', '512000000'));
  const budgets = { outputVoxels: 2 * 10 * 10 * 10 };
  const two = { ...volume([2, 4, 5, 6]) };
  assert.deepEqual(resample({ volume: two, size: [10, 10, 10], budgets }).shape, [2, 10, 10, 10], 'exactly at the budget');
  assert.throws(() => resample({ volume: two, size: [10, 10, 11], budgets }), refusedBy('outputVoxels', '[2, 10, 10, 11]', '2200', '2000'));
  assert.throws(() => resample({ volume: v, size: [0, 4, 4] }), { code: 'INVALID_ARGUMENT' });
});

test('resample to a spacing: huge voxels in the header explode the size; refused before allocating', () => {
  // 8 voxels of 100 mm resampled to 0.2 mm: 4000 per axis, 6.4e10 voxels
  const v = volume([1, 8, 8, 8], [100, 100, 100]);
  assert.throws(() => resample({ volume: v, spacing: [0.2, 0.2, 0.2] }), refusedBy('outputVoxels', '4000x4000x4000'));
  assert.throws(() => resample({ volume: v, spacing: [1e-300, 1, 1] }), refusedBy('outputVoxels'));
  assert.deepEqual(resample({ volume: v, spacing: [50, 50, 50] }).shape, [1, 16, 16, 16]);
  const broken = { ...v, spacing: [NaN, 1, 1] as [number, number, number] };
  assert.throws(() => resample({ volume: broken, spacing: [1, 1, 1] }), (err: unknown) => err instanceof AcsHubError && err.code === 'INVALID_ARGUMENT' && /NaN/.test(err.message));
  assert.throws(() => resample({ volume: v, spacing: [0, 1, 1] }), { code: 'INVALID_ARGUMENT' });
});

test('padOrCrop and channel replication are held against budgets.outputVoxels', () => {
  const v = volume([1, 4, 4, 4]);
  assert.throws(() => padOrCrop({ volume: v, size: [9999, 9999, 9999] }), refusedBy('outputVoxels', '9999x9999x9999'));
  const budgets = { outputVoxels: 3 * 8 * 8 * 8 };
  assert.deepEqual(padOrCrop({ volume: v, size: [8, 8, 24], budgets }).shape, [1, 8, 8, 24]);
  assert.throws(() => padOrCrop({ volume: v, size: [8, 8, 25], budgets }), refusedBy('outputVoxels'));
  const big = volume([1, 8, 8, 8]);
  assert.deepEqual(matchChannels({ volume: big, channels: 3, budgets }).shape, [3, 8, 8, 8]);
  assert.throws(() => matchChannels({ volume: big, channels: 4, budgets }), refusedBy('outputVoxels', 'replicating one channel to 4'));
});

test('sliding windows: window count, all windows together and the assembled output are budgeted', async () => {
  const v = volume([1, 16, 16, 16]);
  let runs = 0;
  const identity = async (batch: Float32Array, shape: readonly number[]): Promise<WindowOutput> => {
    runs++;
    return { data: batch.slice(), shape };
  };
  // 1x1x1 windows over 16^3: 4096 network runs out of 4096 voxels
  await assert.rejects(slidingWindow({ volume: v, windowSize: [1, 1, 1], run: identity, budgets: { slidingWindows: 4095 } }), refusedBy('slidingWindows', '16 x 16 x 16 = 4096 windows'));
  assert.equal(runs, 0, 'refused before the first run');
  // 8^3 windows with overlap 0.5: 3 x 3 x 3 windows of 512 voxels = 13,824 voxels in all
  await assert.rejects(slidingWindow({ volume: v, windowSize: [8, 8, 8], overlap: 0.5, run: identity, budgets: { outputVoxels: 13_823 } }), refusedBy('outputVoxels', '27 windows'));
  assert.equal(runs, 0);
  const ok = await slidingWindow({ volume: v, windowSize: [8, 8, 8], overlap: 0.5, run: identity, budgets: { outputVoxels: 13_824 } });
  assert.equal(ok.windows, 27);
  assert.equal(runs, 27);
  // a network that answers 20 channels per voxel: 20 x 16^3 = 81,920 voxels of output
  runs = 0;
  const wide = async (batch: Float32Array, shape: readonly number[]): Promise<WindowOutput> => {
    runs++;
    return { data: new Float32Array(shape[0]! * 20 * 512), shape: [shape[0]!, 20, 8, 8, 8] };
  };
  await assert.rejects(slidingWindow({ volume: v, windowSize: [8, 8, 8], overlap: 0.5, run: wide, budgets: { outputVoxels: 81_919 } }), refusedBy('outputVoxels', "windows' 20-channel outputs"));
  assert.equal(runs, 1, 'refused when the first answer tells the channel count, before assembling');
  // a volume smaller than the window is padded (virtually): its windows over the padded grid are budgeted
  await assert.rejects(slidingWindow({ volume: volume([1, 2, 2, 2]), windowSize: [64, 64, 64], run: identity, budgets: { outputVoxels: 64 ** 3 - 1 } }), refusedBy('outputVoxels', 'padding'));
});

test('sliding windows: the blend ring is budgeted before it is allocated, and a sink spares the assembled output', async () => {
  const v = volume([1, 40, 64, 64]);
  let runs = 0;
  const wide = async (batch: Float32Array, shape: readonly number[]): Promise<WindowOutput> => {
    runs++;
    return { data: new Float32Array(shape[0]! * 20 * 512), shape: [shape[0]!, 20, 8, 8, 8] };
  };
  const params = { volume: v, windowSize: [8, 8, 8], overlap: 0, batchSize: 16, run: wide };
  const sink = (shape: readonly number[]) => {
    assert.deepEqual(shape, [20, 40, 64, 64]);
    return () => undefined;
  };
  // the ring: 20 classes x 8 planes x 64 x 64 = 655,360 voxels
  await assert.rejects(slidingWindow({ ...params, sink, budgets: { outputVoxels: 655_359 } }), refusedBy('outputVoxels', "blending the windows' 20-channel outputs over 8 planes of 64x64", '655360'));
  assert.equal(runs, 1, 'refused when the first batch tells the channel count');
  const streamed = await slidingWindow({ ...params, sink, budgets: { outputVoxels: 655_360 } });
  assert.equal(streamed.kind, 'planes');
  // assembled, the output is 20 x 40 x 64 x 64 = 3,276,800 voxels
  runs = 0;
  await assert.rejects(slidingWindow({ ...params, budgets: { outputVoxels: 655_360 } }), refusedBy('outputVoxels', "assembling the windows' 20-channel outputs", '3276800'));
  assert.equal(runs, 1);
  // a sink may refuse too, before the ring is allocated
  await assert.rejects(
    slidingWindow({ ...params, sink: () => { throw new LimitExceededError('kept probabilities: over the budget (budgets.outputVoxels)'); } }),
    refusedBy('outputVoxels', 'kept probabilities'),
  );
});
