import assert from 'node:assert/strict';
import { test } from 'node:test';
import { convert } from '../../converters/convert.js';
import { ConversionError, InvalidArgumentError, UnsupportedError } from '../../converters/errors.js';
import { readCheckpointFile } from '../../converters/formats/index.js';
import { initHead } from '../../converters/modes/head.js';
import { adaptInputConv } from '../../converters/modes/stem.js';
import { countParameters, countTrainable, type StateDict } from '../../converters/tensor.js';
import { fixture } from '../helpers.js';

async function resnetTiny(): Promise<StateDict> {
  return (await readCheckpointFile(fixture('formats', 'resnet18_tiny.pth'))).tensors;
}

const convKeys = (sd: StateDict) => [...sd].filter(([, t]) => t.shape.length === 4).map(([k]) => k);

test('parameter counts: acs, 2.5d and mean-acs keep the 2D count to the element; i3d multiplies each conv by k', async () => {
  const sd = await resnetTiny();
  const n2d = countParameters(sd.values());
  for (const mode of ['acs', '2.5d', 'mean-acs'] as const) {
    const r = convert({ kind: 'state-dict', tensors: sd }, { mode });
    assert.equal(countParameters(r.stateDict.values()), n2d, mode);
    assert.equal(r.card.parameters.converted, countTrainable(sd));
  }
  const i3d = convert({ kind: 'state-dict', tensors: sd }, { mode: 'i3d' });
  let expected = n2d;
  for (const k of convKeys(sd)) expected += sd.get(k)!.data.length * (sd.get(k)!.shape[2]! - 1);
  assert.equal(countParameters(i3d.stateDict.values()), expected);
  const soft = convert({ kind: 'state-dict', tensors: sd }, { mode: 'soft-acs' });
  const extra = convKeys(sd).reduce((a, k) => a + sd.get(k)!.shape[0]! * 3, 0);
  assert.equal(countParameters(soft.stateDict.values()), n2d + extra);
});

test('state dicts per mode: keys and shapes the PyTorch reference of each mode expects', async () => {
  const sd = await resnetTiny();
  const acs = convert({ kind: 'state-dict', tensors: sd }, { mode: 'acs' }).stateDict;
  assert.deepEqual([...acs.keys()], [...sd.keys()]);
  for (const [k, t] of sd) assert.equal(acs.get(k), t, `${k} is the very same tensor (nothing moves)`);
  const w = sd.get('layer1.0.conv1.weight')!;
  const d25 = convert({ kind: 'state-dict', tensors: sd }, { mode: '2.5d', axis: 'h' }).stateDict;
  assert.deepEqual(d25.get('layer1.0.conv1.weight')!.shape, [w.shape[0], w.shape[1], 3, 1, 3]);
  assert.equal(d25.get('layer1.0.conv1.weight')!.data, w.data, '2.5d kernels are views');
  const i3d = convert({ kind: 'state-dict', tensors: sd }, { mode: 'i3d' }).stateDict;
  const w3 = i3d.get('layer1.0.conv1.weight')!;
  assert.deepEqual(w3.shape, [w.shape[0], w.shape[1], 3, 3, 3]);
  const src = w.data as Float32Array;
  const dst = w3.data as Float32Array;
  for (let t = 0; t < 3; t++) assert.equal(dst[t * 9 + 4], Math.fround(src[4]! / 3), 'k copies along D, divided by k');
  const soft = convert({ kind: 'state-dict', tensors: sd }, { mode: 'soft-acs' }).stateDict;
  const core = soft.get('layer1.0.conv1.soft_w_core')!;
  assert.deepEqual(core.shape, [w.shape[0], 3]);
  assert.ok((core.data as Float32Array).every((v) => v === 0));
  const keys = [...soft.keys()];
  assert.equal(keys[keys.indexOf('layer1.0.conv1.weight') + 1], 'layer1.0.conv1.soft_w_core');
});

test('stem adaptation follows timm: sum for 1 channel, repeat and scale by 3/n otherwise', () => {
  const w = { dtype: 'F32' as const, shape: [2, 3, 1, 2], data: Float32Array.from([1, 2, 3, 4, 5, 6, 0.5, -1, 0.25, 7, -2, 3]) };
  const one = adaptInputConv(w, 1);
  assert.deepEqual(one.shape, [2, 1, 1, 2]);
  assert.deepEqual([...(one.data as Float32Array)], [1 + 3 + 5, 2 + 4 + 6, 0.5 + 0.25 - 2, -1 + 7 + 3]);
  const four = adaptInputConv(w, 4);
  assert.deepEqual(four.shape, [2, 4, 1, 2]);
  const f = four.data as Float32Array;
  const s = Math.fround(3 / 4);
  assert.equal(f[0], Math.fround(1 * s));
  assert.equal(f[6], Math.fround(1 * s), 'channel 3 repeats channel 0');
  assert.equal(f[5], Math.fround(6 * s));
  assert.equal(adaptInputConv(w, 3), w);
  assert.throws(() => adaptInputConv(w, 0), InvalidArgumentError);
});

test('in-channel adaptation and a new head reach the converted checkpoint and the card', async () => {
  const sd = await resnetTiny();
  const r = convert({ kind: 'state-dict', tensors: sd }, { mode: 'acs', inChannels: 1, head: 7, seed: 3 });
  assert.deepEqual(r.stateDict.get('conv1.weight')!.shape.slice(0, 2), [sd.get('conv1.weight')!.shape[0], 1]);
  assert.deepEqual(r.stateDict.get('fc.weight')!.shape, [7, sd.get('fc.weight')!.shape[1]]);
  assert.equal(r.card.input.channels, 1);
  assert.equal(r.card.output.size, 7);
  assert.equal(r.card.preprocessing.mean.length, 1);
  const again = convert({ kind: 'state-dict', tensors: sd }, { mode: 'acs', inChannels: 1, head: 7, seed: 3 });
  assert.deepEqual(again.stateDict.get('fc.weight')!.data, r.stateDict.get('fc.weight')!.data, 'seeded');
  const features = convert({ kind: 'state-dict', tensors: sd }, { mode: 'acs', head: 'features' });
  assert.ok(!features.stateDict.has('fc.weight') && !features.stateDict.has('fc.bias'));
  assert.equal(features.card.output.kind, 'features');
  assert.equal(features.card.output.size, sd.get('fc.weight')!.shape[1]);
});

test('head initialisations: bounds of each rule', () => {
  const lin = initHead('torch-linear', 50, 64, 1);
  assert.ok((lin.weight.data as Float32Array).every((v) => Math.abs(v) <= 1 / 8));
  assert.ok((lin.bias.data as Float32Array).some((v) => v !== 0));
  const n = initHead('normal-0.01', 100, 100, 1).weight.data as Float32Array;
  const sd = Math.sqrt(n.reduce((a, v) => a + v * v, 0) / n.length);
  assert.ok(Math.abs(sd - 0.01) < 0.001, `std ${sd}`);
  assert.ok((initHead('uniform-out', 16, 8, 1).weight.data as Float32Array).every((v) => Math.abs(v) <= 0.25));
  assert.ok((initHead('trunc-normal-0.02', 4, 4, 1).bias.data as Float32Array).every((v) => v === 0));
});

test('the card counts multiply-adds of ACS against dense 3D kernels', async () => {
  const r = convert({ kind: 'state-dict', tensors: await resnetTiny() }, { mode: 'acs', inputSize: [32, 32, 32] });
  assert.ok(r.card.multiplyAdds.converted > 0);
  assert.ok(r.card.multiplyAdds.ratio < 0.5 && r.card.multiplyAdds.ratio > 0.1, `ratio ${r.card.multiplyAdds.ratio}`);
  const dense = convert({ kind: 'state-dict', tensors: await resnetTiny() }, { mode: 'i3d', inputSize: [32, 32, 32] });
  assert.equal(dense.card.multiplyAdds.converted, dense.card.multiplyAdds.dense3d);
  assert.equal(dense.card.multiplyAdds.dense3d, r.card.multiplyAdds.dense3d);
});

test('clear errors: unknown state dict, wrong --arch, bad options', async () => {
  const junk: StateDict = new Map([['foo.weight', { dtype: 'F32', shape: [2, 2], data: new Float32Array(4) }]]);
  assert.throws(() => convert({ kind: 'state-dict', tensors: junk }, { mode: 'acs' }), (e: unknown) => e instanceof ConversionError && /cannot tell the architecture.*--arch/.test(e.message));
  const sd = await resnetTiny();
  assert.throws(() => convert({ kind: 'state-dict', tensors: sd }, { mode: 'acs', arch: 'densenet121' }), /does not have the keys of a densenet121/);
  assert.throws(() => convert({ kind: 'state-dict', tensors: sd }, { mode: 'acs', arch: 'alexnet' }), /unknown architecture 'alexnet'/);
  assert.throws(() => convert({ kind: 'state-dict', tensors: sd }, { mode: 'bogus' as 'acs' }), /unknown mode 'bogus'/);
  assert.throws(() => convert({ kind: 'state-dict', tensors: sd }, { mode: 'acs', axis: 'x' as 'd' }), /axis must be d, h or w/);
  assert.throws(() => convert({ kind: 'state-dict', tensors: sd }, { mode: 'acs', splits: { 'conv1.weight': [1, 1, 1] } }), /sum to/);
  const nonSquare = new Map(sd);
  nonSquare.set('conv1.weight', { dtype: 'F32', shape: [4, 3, 7, 5], data: new Float32Array(4 * 3 * 35) });
  assert.throws(() => convert({ kind: 'state-dict', tensors: nonSquare }, { mode: 'acs' }), UnsupportedError);
});
