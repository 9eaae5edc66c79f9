import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp from 'sharp';
import { classProbabilities, featureVector, labelColour, labelsFromScores, renderPreview, softmax, topK } from '../../inference/predictions/index.js';
import { assertClose } from '../helpers.js';

test('top-k: softmax probabilities with the caller\'s labels, best first', () => {
  const scores = Float32Array.from([1, 3, 2, 3, -1]);
  const top = topK({ scores, labels: ['a', 'b', 'c', 'd', 'e'], k: 3 });
  assert.deepEqual(top.map((x) => x.label), ['b', 'd', 'c'], 'ties keep the lower index first');
  const e = [1, 3, 2, 3, -1].map(Math.exp);
  const z = e.reduce((a, b) => a + b, 0);
  assertClose(top.map((x) => x.probability), [e[1]! / z, e[3]! / z, e[2]! / z]);
  assert.equal(top[0]!.logit, 3);
  assert.equal(topK({ scores }).length, 5);
  assertClose([softmax([1000, 1000]).reduce((a, b) => a + b, 0)], [1], { what: 'stable for large logits' });
  assert.deepEqual(topK({ scores: [0.2, 0.7, 0.1], softmax: false, k: 1 }).map((x) => [x.index, x.probability]), [[1, 0.7]]);
  assert.throws(() => topK({ scores, labels: ['a'] }), { code: 'INVALID_ARGUMENT' });
  assert.throws(() => topK({ scores: [NaN] }), { code: 'INVALID_ARGUMENT' });
  assert.throws(() => topK({ scores, k: 0 }), { code: 'INVALID_ARGUMENT' });
});

test('label maps: arg-max over classes, or a threshold for one channel', () => {
  const scores = Float32Array.from([0, 5, 1, 1, /* class 1 */ 1, 2, 3, 1]);
  assert.deepEqual([...labelsFromScores({ data: scores, shape: [1, 2, 1, 2, 2] }).data], [1, 0, 1, 0]);
  assert.deepEqual([...labelsFromScores({ data: Float32Array.from([-1, 2, 0, 0.5]), shape: [1, 1, 2, 2] }).data], [0, 1, 0, 1]);
  assert.throws(() => labelsFromScores({ data: scores, shape: [3, 1, 2, 2] }), { code: 'INVALID_ARGUMENT' });
});

test('features: a plain vector, spatial outputs averaged', () => {
  assert.deepEqual(featureVector({ data: Float32Array.from([1, 2, 3]), shape: [1, 3] }), [1, 2, 3]);
  assert.deepEqual(featureVector({ data: Float32Array.from([1, 3, 10, 20]), shape: [1, 2, 1, 1, 2] }), [2, 15]);
  assert.throws(() => featureVector({ data: new Float32Array(4), shape: [2, 2] }), { code: 'INVALID_ARGUMENT' });
});

/** A phantom in RAS+ [D, H, W]: grey body, bright marker at the patient's right, one at anterior, one at superior. */
function phantom() {
  const [D, H, W] = [20, 30, 40];
  const data = new Float32Array(D * H * W);
  const labels = new Uint8Array(D * H * W);
  for (let d = 0; d < D; d++) for (let h = 0; h < H; h++) for (let w = 0; w < W; w++) {
    const i = (d * H + h) * W + w;
    data[i] = 100;
    if (w >= 34) data[i] = 1000; // patient's right
    if (h >= 26) data[i] = 1000; // anterior
    if (d >= 17) labels[i] = 1; // superior
  }
  return { volume: { data, shape: [1, D, H, W] as const, spacing: [2, 1, 1] as [number, number, number] }, labels };
}

async function pixels(png: Uint8Array) {
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  return { info, at: (x: number, y: number) => [...data.subarray((y * info.width + x) * info.channels, (y * info.width + x) * info.channels + 3)] };
}

test('preview: three views side by side, oriented (R on the viewer\'s left, anterior and superior up)', async () => {
  const { volume, labels } = phantom();
  const png = await renderPreview({ volume, window: [0, 1000], overlay: { kind: 'labels', data: labels }, opacity: 0.5, height: 60, slices: [10, 15, 20] });
  const { info, at } = await pixels(png);
  // mm: axial 40 x 30, coronal 40 x 40, sagittal 30 x 40; 60 px for 40 mm; a legend row (label 1) under them
  assert.equal(info.height, 60 + 8 + 16);
  assert.equal(info.width, 60 + 60 + 45 + 2 * 4);
  const axialTop = Math.floor((60 - 45) / 2);
  assert.deepEqual(at(2, axialTop + 30), [255, 255, 255], 'axial: patient right on the left');
  assert.deepEqual(at(30, axialTop + 1), [255, 255, 255], 'axial: anterior at the top');
  assert.equal(at(30, axialTop + 30)[0], 26, 'axial: body grey elsewhere');
  assert.deepEqual(at(64 + 2, 30), [255, 255, 255], 'coronal: patient right on the left');
  assert.ok(at(64 + 30, 1)[0]! > at(64 + 30, 1)[1]!, 'coronal: superior label at the top');
  assert.deepEqual(at(128 + 2, 30), [255, 255, 255], 'sagittal: anterior on the left');
  const neuro = await pixels(await renderPreview({ volume, window: [0, 1000], height: 60, convention: 'neurological' }));
  assert.deepEqual(neuro.at(57, axialTop + 30), [255, 255, 255], 'neurological: patient right on the right');
});

test('preview: heat map overlay and argument checks', async () => {
  const { volume } = phantom();
  const heat = Float32Array.from(volume.data, (_, i) => i / volume.data.length);
  const png = await renderPreview({ volume, overlay: { kind: 'heatmap', data: heat } });
  assert.equal((await sharp(png).metadata()).format, 'png');
  await assert.rejects(renderPreview({ volume, overlay: { kind: 'labels', data: new Uint8Array(3) } }), { code: 'INVALID_ARGUMENT' });
  await assert.rejects(renderPreview({ volume, slices: [99, 0, 0] }), { code: 'INVALID_ARGUMENT' });
});

test('preview: slices through the largest structure by default, and a legend naming the classes present', async () => {
  const { volume } = phantom();
  const labels = new Uint8Array(volume.data.length);
  const [, , H, W] = volume.shape;
  // label 2: a block low in d (slices 2..5), bigger than label 5 (one voxel at the centre)
  for (let d = 2; d < 6; d++) for (let h = 5; h < 25; h++) for (let w = 5; w < 35; w++) labels[(d * H + h) * W + w] = 2;
  labels[(10 * H + 15) * W + 20] = 5;
  const names = ['background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle'];
  const png = await renderPreview({ volume, window: [0, 1000], overlay: { kind: 'labels', data: labels, names }, opacity: 1, height: 60 });
  const { info, at } = await pixels(png);
  assert.equal(info.height, 60 + 8 + 2 * 16, 'two legend rows: labels 2 and 5');
  assert.deepEqual(at(6, 60 + 4 + 4), [...labelColour(2)], 'first swatch: label 2');
  assert.deepEqual(at(6, 60 + 4 + 16 + 4), [...labelColour(5)], 'second swatch: label 5');
  // the axial view (x < 60) cuts the block at its centroid (d = 4): its centre pixel wears label 2's colour
  const axialTop = Math.floor((60 - 45) / 2);
  assert.deepEqual(at(30, axialTop + 22), [...labelColour(2)], 'axial slice through the largest structure');
  const centre = await pixels(await renderPreview({ volume, window: [0, 1000], overlay: { kind: 'labels', data: labels, names }, opacity: 1, height: 60, slices: [10, 15, 20] }));
  assert.notDeepEqual(centre.at(30, axialTop + 22), [...labelColour(2)], 'the centre slice misses it');
  // the legend's text is drawn: its rows are not all background beside the swatches
  let lit = 0;
  for (let y = 60; y < info.height; y++) for (let x = 24; x < 100; x++) if (at(x, y)[0]! > 128) lit++;
  assert.ok(lit > 20, `legend text drawn (${lit} bright pixels)`);
  const nothing = await pixels(await renderPreview({ volume, overlay: { kind: 'labels', data: new Uint8Array(labels.length), names }, height: 60 }));
  assert.equal(nothing.info.height, 60, 'no legend without labels');
});

test('class probabilities: softmax over the classes per voxel (sigmoid for one channel)', () => {
  const scores = Float32Array.from([1, 1000, -2, 0, 3, 1000, 0, 0]); // [1, 2, 1, 2, 2]
  const p = classProbabilities({ data: scores, shape: [1, 2, 1, 2, 2] });
  assert.deepEqual(p.shape, [2, 1, 2, 2]);
  const e = (a: number, b: number) => Math.exp(a) / (Math.exp(a) + Math.exp(b));
  assertClose(p.data, [e(1, 3), 0.5, e(-2, 0), 0.5, e(3, 1), 0.5, e(0, -2), 0.5], { rtol: 1e-6 });
  assertClose(classProbabilities({ data: Float32Array.from([0, 2]), shape: [1, 1, 1, 2] }).data, [0.5, 1 / (1 + Math.exp(-2))], { rtol: 1e-6 });
  assert.throws(() => classProbabilities({ data: scores, shape: [3, 1, 2, 2] }), { code: 'INVALID_ARGUMENT' });
});
