import assert from 'node:assert/strict';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { encodeOnnx } from '../../../converters/formats/onnx.js';
import { A, graphToModel, type Graph } from '../../../converters/graph/ir.js';
import { InferenceEngine } from '../../../inference/runtime/engine.js';
import { loadModelFile, modelFromBytes } from '../../../inference/runtime/model-file.js';
import { infer, preprocess, prepareInput, prepareSpooledInput, type InferOptions, type LoadedModel } from '../../../inference/runtime/pipeline.js';
import { classProbabilities, labelsFromScores } from '../../../inference/predictions/index.js';
import { encodeNifti, readNiftiFile, spoolNiftiFile, type Vec3, type Volume } from '../../../inference/volumes/index.js';
import { fixture, prng, tempDir } from '../../helpers.js';
import { assertSameBits, wholeVolumeBlend } from '../whole-volume.js';

/** A CT-like volume of 64 x 200 x 180 voxels (HU): air, a body, two lungs, a spine, noise. */
function ct(): Volume {
  const [d, h, w] = [64, 200, 180];
  const r = prng(64);
  const data = new Float32Array(d * h * w);
  for (let z = 0; z < d; z++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const u = (x - 90) / 80, v = (y - 100) / 70;
    let hu = u * u + v * v < 1 ? 40 : -1000;
    if (((Math.abs(u) - 0.45) / 0.3) ** 2 + (v / 0.6) ** 2 < 1) hu = -850;
    if ((u / 0.1) ** 2 + ((v + 0.6) / 0.12) ** 2 < 1 && z % 16 < 12) hu = 700;
    data[(z * h + y) * w + x] = hu + Math.round((r() - 0.5) * 60);
  }
  return { data, shape: [1, d, h, w], spacing: [2, 0.8, 0.8], affine: [0.8, 0, 0, 0, 0, 0.8, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1], source: { format: 'nifti', file: 'ct.nii', channels: 'single', warnings: [] }, modality: 'CT' };
}

let engine: InferenceEngine;
let model: LoadedModel;
before(async () => {
  // the small FCN of the segmentation goldens: 3 input channels (the CT replicated), 3 classes
  model = await loadModelFile(fixture('goldens', 'segmentation', 'fcn.onnx'), { mode: 'acs' });
  engine = new InferenceEngine({ threads: 1 });
});
after(() => engine.close());

const patch: Vec3 = [32, 64, 64];
// a normalisation under which the golden's seeded weights tell two classes apart along the tissue edges
const options: InferOptions = { patch, overlap: 0.25, window: 'abdomen', mean: [1, 1, 1], std: [0.02, 0.02, 0.02] };

/** The whole-volume path: the input made whole, every window blended into full-size sums, then the labels of all the scores. */
async function wholeVolume(volume: Volume) {
  const input = preprocess(volume, model, options).volume;
  return wholeVolumeBlend({
    volume: input,
    window: patch,
    overlap: [0.25, 0.25, 0.25],
    blend: 'gaussian',
    run: async (batch, shape) => Object.values(await engine.run(model.source, { data: batch, shape: [...shape] }))[0]!,
  });
}

test('a 64x200x180 CT through windows of 32x64x64: the labels and probabilities of the whole-volume path, with a ring of 32 planes and no scores assembled', async () => {
  const volume = ct();
  const o: InferOptions = { ...options, keep: 'probabilities' };
  const prepared = prepareInput(volume, model, o);
  assert.equal(prepared.volume, undefined, 'the network input is never made whole');
  assert.equal(prepared.windows?.source, volume, 'the windows are cut from the volume as read');
  assert.equal(prepared.windows?.channels.length, 3, 'replicated to the 3 channels as each window is cut');
  const result = await infer(engine, model, volume, o, undefined, prepared);
  assert.equal(result.kind, 'segmentation');
  assert.deepEqual(result.output.shape, [1, 3, 64, 200, 180]);
  assert.equal(result.output.data, undefined, 'the scores were finished plane by plane, not kept');
  assert.deepEqual(result.slab, { slabPlanes: 32, peakPlanes: 32 }, 'the accumulator held the window depth, 32 of the 64 planes');
  assert.ok(result.steps.includes('sliding windows 32x64x64 (overlap 0.25, 48 windows)'), result.steps.join('; '));

  const whole = await wholeVolume(volume);
  assert.equal(whole.windows, 48);
  const expected = labelsFromScores({ data: whole.data, shape: whole.shape });
  assert.deepEqual(result.labels!.shape, [64, 200, 180]);
  const labels = result.labels!.data;
  for (let i = 0; i < labels.length; i++) if (labels[i] !== expected.data[i]) assert.fail(`label ${i}: ${labels[i]}, the whole-volume path says ${expected.data[i]}`);
  assert.ok(new Set(labels).size >= 2, 'more than one class: the labels follow the input');
  assertSameBits(result.probabilities!.data, classProbabilities({ data: whole.data, shape: whole.shape }).data, 'probabilities');
  assert.deepEqual(result.probabilities!.shape, [1, 3, 64, 200, 180]);
});

/** A one-channel network of 8 classes: a 1x1x1 convolution, class c scoring (c - 3.5) x the input. */
function eightClasses(): LoadedModel {
  const g: Graph = {
    name: 'seg8',
    opset: 17,
    metadata: {},
    inputs: [{ name: 'input', dtype: 'F32', shape: ['N', 1, 'D', 'H', 'W'] }],
    outputs: [{ name: 'scores', dtype: 'F32', shape: ['N', 8, 'D', 'H', 'W'] }],
    initializers: new Map([
      ['w', { dtype: 'F32', shape: [8, 1, 1, 1, 1], data: Float32Array.from({ length: 8 }, (_, c) => c - 3.5) }],
      ['b', { dtype: 'F32', shape: [8], data: Float32Array.from({ length: 8 }, (_, c) => -((c - 3.5) ** 2) / 4) }],
    ]),
    nodes: [{ name: 'conv', op: 'Conv', domain: '', inputs: ['input', 'w', 'b'], outputs: ['scores'], attrs: { kernel_shape: A.ints([1, 1, 1]) } }],
  };
  return modelFromBytes(encodeOnnx(graphToModel(g)), undefined, 'seg8.onnx');
}

test('kept probabilities or scores are held against budgets.outputVoxels before they are allocated; labels alone need only the ring', async () => {
  const volume = ct();
  const seg8 = eightClasses();
  // windows 48 x 1 x 32*64*64 = 6.3M voxels; the ring 8 x 32 x 200 x 180 = 9.2M; probabilities or scores 8 x 64 x 200 x 180 = 18.4M
  const budgets = { outputVoxels: 10_000_000 };
  const o: InferOptions = { ...options, mean: [0.5], std: [0.25] };
  const ok = await infer(engine, seg8, volume, o, budgets);
  assert.deepEqual(ok.slab, { slabPlanes: 32, peakPlanes: 32 });
  assert.equal(ok.output.data, undefined);
  assert.ok(new Set(ok.labels!.data).size >= 4, 'several classes');
  for (const keep of ['probabilities', 'scores'] as const) {
    await assert.rejects(infer(engine, seg8, volume, { ...o, keep }, budgets), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'LIMIT_EXCEEDED');
      assert.match(err.message, new RegExp(`keeping the ${keep} of 8 classes: \\[8, 64, 200, 180\\] is 18432000 voxels, over the budget of 10000000 \\(budgets\\.outputVoxels\\)`));
      return true;
    });
  }
  await assert.rejects(infer(engine, seg8, volume, o, { outputVoxels: 9_000_000 }), /blending the windows' 8-channel outputs over 32 planes of 200x180: \[8, 32, 200, 180\] is 9216000 voxels.*budgets\.outputVoxels/);
});

test('a NIfTI kept on disk and read a plane at a time gives what the volume read whole gives: labels, probabilities and steps, with a CT window, and resampled with percentiles; whole-volume runs read it whole', async (t) => {
  const dir = await tempDir(t);
  const spoolDir = join(dir, 'spool');
  await mkdir(spoolDir);
  const source = ct();
  // slices stored from the top, rows flipped (LPS): the spool writes its planes out of order
  const affine = [-0.8, 0, 0, 100, 0, -0.8, 0, 90, 0, 0, -2, 120, 0, 0, 0, 1];
  const ctPath = join(dir, 'ct.nii.gz');
  await writeFile(ctPath, gzipSync(encodeNifti({ data: source.data, shape: source.shape, affine })));
  // the same anatomy in unitless values (an MR, say): percentiles, not a CT window
  const mrPath = join(dir, 'mr.nii');
  await writeFile(mrPath, encodeNifti({ data: source.data.map((v) => (v + 1000) / 7), shape: source.shape, affine }));
  const cases: { what: string; path: string; o: InferOptions }[] = [
    { what: 'CT, abdomen window', path: ctPath, o: { ...options, keep: 'probabilities' } },
    { what: 'MR, resampled, percentiles', path: mrPath, o: { ...options, window: undefined, spacing: [2.5, 1, 1.1], keep: 'probabilities' } },
  ];
  for (const { what, path, o } of cases) {
    const whole = await readNiftiFile(path);
    const spooled = await spoolNiftiFile(path, { dir: spoolDir });
    try {
      const prepared = await prepareSpooledInput(spooled, model, o);
      assert.equal(prepared.volume, undefined, `${what}: the input is never made whole`);
      assert.equal('data' in prepared.windows!.source, false, `${what}: the windows are cut from planes read on demand`);
      const expected = await infer(engine, model, whole, o);
      const got = await infer(engine, model, spooled, o);
      assert.deepEqual(got.steps, expected.steps, what);
      assert.ok(got.steps.some((s) => s.startsWith(o.window ? 'window abdomen' : 'scale percentiles')), `${what}: ${got.steps.join('; ')}`);
      assert.deepEqual(got.input, expected.input, what);
      assert.deepEqual(got.labels!.shape, expected.labels!.shape, what);
      assert.deepEqual(got.labels!.data, expected.labels!.data, `${what}: labels`);
      assert.ok(new Set(got.labels!.data).size >= 2, `${what}: more than one class`);
      assertSameBits(got.probabilities!.data, expected.probabilities!.data, `${what}: probabilities`);
      // without windows the network takes the whole volume: read whole, the same answer
      const o2: InferOptions = { window: o.window, mean: o.mean, std: o.std, size: [16, 48, 48] };
      const a = await infer(engine, model, spooled, o2);
      const b = await infer(engine, model, whole, o2);
      assert.deepEqual(a.steps, b.steps, `${what}: whole-volume steps`);
      assert.deepEqual(a.labels!.data, b.labels!.data, `${what}: whole-volume labels`);
    } finally {
      await spooled.close();
    }
  }
  assert.deepEqual(await readdir(spoolDir), []);
});

test('non-finite voxels in a spooled volume are refused with the message the volume read whole gets', async (t) => {
  const dir = await tempDir(t);
  const data = Float32Array.from({ length: 6 * 20 * 20 }, (_, i) => (i === 1234 || i === 2000 ? NaN : i % 50));
  const path = join(dir, 'nan.nii');
  await writeFile(path, encodeNifti({ data, shape: [1, 6, 20, 20], affine: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, -1, 0, 0, 0, 0, 1] }));
  const o: InferOptions = { ...options, patch: [4, 8, 8] };
  const expected = await infer(engine, model, await readNiftiFile(path), o).then(() => assert.fail('read whole: not refused'), (err: Error) => err.message);
  assert.match(expected, /2 of 2400 voxels are not finite numbers/);
  const spooled = await spoolNiftiFile(path);
  try {
    await assert.rejects(infer(engine, model, spooled, o), (err: Error & { code?: string }) => {
      assert.equal(err.message, expected);
      return true;
    });
  } finally {
    await spooled.close();
  }
});
