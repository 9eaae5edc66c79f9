import assert from 'node:assert/strict';
import { test } from 'node:test';
import { convert } from '../../converters/convert.js';
import { loadSource } from '../../converters/convert-file.js';
import { ROOT } from '../helpers.js';
import { converted, DEMO_ONNX, loadDemo, meanDice, shapesVolume, sliceBySlice, type Segmenter } from './shapes.js';

// Measured on this set (8 volumes 38x45x52, seeds 1..8) when the network was trained:
//                       background  sphere  cube    foreground (sphere or cube)
//   2D slice by slice   0.9998      0.9593  0.7028  0.9703
//   3D acs              0.9987      0.5116  0.2674  0.8887
// The floors are those figures minus 0.05.
const MARGIN = 0.05;
const MEASURED = {
  slices: { perClass: [0.9998, 0.9593, 0.7028], foreground: 0.9703 },
  acs: { perClass: [0.9987, 0.5116, 0.2674], foreground: 0.8887 },
};
const SIZE: [number, number, number] = [38, 45, 52];
const VOLUMES = Array.from({ length: 8 }, (_, i) => shapesVolume(SIZE, i + 1));

const demo = await loadDemo(ROOT);
const classes = demo.card.labels.length;

async function assertAbove(what: string, net: Segmenter, measured: { perClass: number[]; foreground: number }): Promise<void> {
  let dice: Awaited<ReturnType<typeof meanDice>>;
  try {
    dice = await meanDice(net, VOLUMES, classes);
  } finally {
    await net.close();
  }
  const all = `per class ${dice.perClass.map((x) => x.toFixed(4)).join(', ')}, foreground ${dice.foreground.toFixed(4)}`;
  dice.perClass.forEach((d, k) => {
    assert.ok(d >= measured.perClass[k]! - MARGIN, `${what}: Dice of '${demo.card.labels[k]}' ${d.toFixed(4)} is below ${measured.perClass[k]} - ${MARGIN} (${all})`);
  });
  assert.ok(dice.foreground >= measured.foreground - MARGIN, `${what}: foreground Dice ${dice.foreground.toFixed(4)} is below ${measured.foreground} - ${MARGIN} (${all})`);
}

test('the seeded test volumes hold spheres and cubes, and a seed always draws the same volume', () => {
  const counts = [0, 0, 0];
  for (const v of VOLUMES) for (const l of v.labels) counts[l]!++;
  assert.ok(counts[1]! > 1000 && counts[2]! > 1000, `voxels per class: ${counts.join(', ')}`);
  // Deterministic: the same seed draws the same volume.
  assert.deepEqual(shapesVolume(SIZE, 3).image, VOLUMES[2]!.image);
});

test('2D slice-by-slice baseline: Dice per class stays above what was measured, minus the margin', async () => {
  await assertAbove('2D slice by slice', await sliceBySlice(demo), MEASURED.slices);
});

test('the 2D U-Net converted to ACS, no fine-tuning: Dice per class stays above what was measured, minus the margin', async () => {
  await assertAbove('3D acs', await converted(demo, 'acs'), MEASURED.acs);
});

test('ACS conversion keeps the 2D parameter count', async () => {
  const { source } = await loadSource(DEMO_ONNX, demo.onnx2d);
  const { parameters } = convert(source, { mode: 'acs' }).card;
  assert.equal(parameters.converted, parameters.source2d);
  // The export folds each BatchNorm (weight, bias) into its convolution's bias: one parameter
  // fewer per normalised channel than the PyTorch module counts (two blocks of two per level
  // and decoder level).
  const [w0, w1, w2] = demo.card.architecture.widths as [number, number, number];
  assert.equal(parameters.source2d, demo.card.architecture.parameters - 2 * (w0 + w1 + w2 + w1 + w0));
});

test('at 33x47x61 the ACS U-Net answers at the input size; its skip connections line up on every axis at the padded size', async () => {
  const size = [33, 47, 61];
  const multiple = demo.card.input.sizeMultiple;
  const v = shapesVolume(size as [number, number, number], 99);
  const net = await converted(demo, 'acs');
  const flat = await sliceBySlice(demo);
  try {
    const labels = await net.segment(v.image, size);
    assert.equal(labels.length, 33 * 47 * 61);
    // The network itself, at the size segment() pads to: every ConvTranspose grows its
    // collapsed axis as the other two, so each decoder level concatenates with its encoder map.
    const padded = size.map((s) => Math.ceil(s / multiple) * multiple);
    assert.deepEqual(padded, [36, 48, 64]);
    const out = await net.run(new Float32Array(36 * 48 * 64), padded);
    assert.deepEqual(out.dims, [1, classes, 36, 48, 64]);
    // The multiple of 4 is the 2D network's own requirement (two poolings, two up-convolutions
    // of stride 2), not the conversion's: the 2D network refuses 47x61 slices likewise.
    await assert.rejects(net.run(v.image, size));
    await assert.rejects(flat.run(v.image, size));
    assert.equal((await flat.segment(v.image, size)).length, 33 * 47 * 61);
  } finally {
    await net.close();
    await flat.close();
  }
});
