import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { convert } from '../../../converters/convert.js';
import { ConversionError } from '../../../converters/errors.js';
import { readCheckpointFile } from '../../../converters/formats/index.js';
import { encodeOnnx } from '../../../converters/formats/onnx.js';
import { GraphBuilder } from '../../../converters/graph/builder.js';
import { A, graphToModel, type Graph } from '../../../converters/graph/ir.js';
import { convertGraphTo3d } from '../../../converters/graph/to3d.js';
import type { StateDict } from '../../../converters/tensor.js';
import { assertClose, detTensor, fixture } from '../../helpers.js';

async function run(graph: Graph, input: Float32Array, shape: number[]): Promise<{ data: Float32Array; dims: readonly number[] }> {
  const session = await ort.InferenceSession.create(encodeOnnx(graphToModel(graph)));
  const out = (await session.run({ input: new ort.Tensor('float32', input, shape) }))['output']!;
  return { data: out.data as Float32Array, dims: out.dims };
}

/**
 * The D planes the axial part of an ACS conv reads: one input channel, plane d filled with d + 1
 * and an averaging kernel, so the axial output at the centre of H and W is (plane read) + 1,
 * and 0 where the plane read lies outside the volume.
 */
async function axialPlanes(k: number, s: number, p: number, n: number): Promise<number[]> {
  const sd: StateDict = new Map([['conv.weight', { dtype: 'F32', shape: [3, 1, k, k], data: new Float32Array(3 * k * k).fill(1 / (k * k)) }]]);
  const b = new GraphBuilder(sd, 'planes');
  b.output(b.conv(b.input('input', ['N', 1, 'H', 'W']), 'conv', { stride: s, pad: p }), 'output');
  const { graph } = convertGraphTo3d(b.build(), { mode: 'acs' });
  const hw = 2 * k + 4;
  const x = new Float32Array(n * hw * hw);
  for (let d = 0; d < n; d++) x.fill(d + 1, d * hw * hw, (d + 1) * hw * hw);
  const out = await run(graph, x, [1, 1, n, hw, hw]);
  const [, , dOut, hOut, wOut] = out.dims as number[];
  const centre = Math.floor(hOut! / 2) * wOut! + Math.floor(wOut! / 2);
  return Array.from({ length: dOut! }, (_, i) => Math.round(out.data[i * hOut! * wOut! + centre]!) - 1);
}

test('plane rules: ConvNeXt 4x4/4 reads 4i+2 at every size; 2x2/2 reads 2i on even sizes, 2i+1 on odd ones', async () => {
  for (const n of [8, 12, 13, 16, 17]) assert.deepEqual(await axialPlanes(4, 4, 0, n), Array.from({ length: Math.floor(n / 4) }, (_, i) => 4 * i + 2), `4x4/4, n=${n}`);
  assert.deepEqual(await axialPlanes(2, 2, 0, 16), [0, 2, 4, 6, 8, 10, 12, 14]);
  assert.deepEqual(await axialPlanes(2, 2, 0, 9), [1, 3, 5, 7]);
  // first rule away from the centre: k=5, p=0 with 2 * n_out == n reads plane i, not i + 2
  assert.deepEqual(await axialPlanes(5, 1, 0, 8), [0, 1, 2, 3]);
  assert.deepEqual(await axialPlanes(5, 1, 0, 9), [2, 3, 4, 5, 6]);
  // reads outside the volume are zero (-1 here): second rule before the start, first rule past the end
  assert.deepEqual(await axialPlanes(1, 2, 2, 6), [-1, 0, 2, 4, -1]);
  assert.deepEqual(await axialPlanes(2, 3, 1, 6), [0, 3, -1]);
});

test('BN folding and per-view activations compute what the unfused graph computes', async () => {
  const sd: StateDict = new Map([
    ['a.weight', { dtype: 'F32', shape: [7, 3, 3, 3], data: detTensor([7, 3, 3, 3], 1, 0.3) }],
    ['bn.weight', { dtype: 'F32', shape: [7], data: detTensor([7], 2, 0.5).map((v) => 1 + v) }],
    ['bn.bias', { dtype: 'F32', shape: [7], data: detTensor([7], 3, 0.2) }],
    ['bn.running_mean', { dtype: 'F32', shape: [7], data: detTensor([7], 4, 0.1) }],
    ['bn.running_var', { dtype: 'F32', shape: [7], data: detTensor([7], 5, 0.4).map((v) => 1 + v) }],
    ['b.weight', { dtype: 'F32', shape: [5, 7, 3, 3], data: detTensor([5, 7, 3, 3], 6, 0.2) }],
    ['b.bias', { dtype: 'F32', shape: [5], data: detTensor([5], 7, 0.1) }],
  ]);
  const b = new GraphBuilder(sd, 'fused');
  const x = b.relu(b.bn(b.conv(b.input('input', ['N', 3, 'H', 'W']), 'a', { stride: 2, pad: 1 }), 'bn'), 'relu1');
  b.output(b.relu(b.conv(x, 'b', { pad: 1 }), 'relu2'), 'output');
  const g2 = b.build();
  const fused = convertGraphTo3d(g2, { mode: 'acs' }).graph;
  const plain = convertGraphTo3d(g2, { mode: 'acs', fuse: false }).graph;
  assert.ok(!fused.nodes.some((n) => n.op === 'BatchNormalization') && plain.nodes.some((n) => n.op === 'BatchNormalization'));
  assert.equal(fused.nodes.filter((n) => n.op === 'Relu').length, 6, 'one Relu per view of each conv');
  const shape = [2, 3, 9, 10, 11];
  const input = detTensor(shape, 8);
  const [a, p] = [await run(fused, input, shape), await run(plain, input, shape)];
  assert.deepEqual(a.dims, p.dims);
  assertClose(a.data, p.data, { rtol: 1e-5, atol: 1e-6, what: 'fused vs unfused' });
});

test('refusals: transposed and non-square convolutions, and classifiers over a flattened 2D map', async () => {
  const sd: StateDict = new Map([
    ['up.weight', { dtype: 'F32', shape: [3, 4, 2, 2], data: detTensor([3, 4, 2, 2], 1) }],
    ['rect.weight', { dtype: 'F32', shape: [4, 3, 3, 5], data: detTensor([4, 3, 3, 5], 2) }],
  ]);
  // A transposed conv given by its output_shape (its pads depend on the size) or auto_pad.
  const up = new GraphBuilder(sd, 'up');
  up.output(up.op('ConvTranspose', [up.input('input', ['N', 3, 'H', 'W']), up.weight('up.weight')], { kernel_shape: A.ints([2, 2]), strides: A.ints([2, 2]), output_shape: A.ints([64, 96]) }, 'up'), 'output');
  assert.throws(() => convertGraphTo3d(up.build(), { mode: 'acs' }), (e: unknown) => e instanceof ConversionError && e.message === "node 'up' (ConvTranspose): auto_pad and output_shape are not supported; export with pads and output_padding");

  // A non-square conv whose H and W outputs differ in size: its three views cannot line up.
  const refused = (op: 'Conv' | 'ConvTranspose', weight: string, attrs: Record<string, ReturnType<typeof A.ints>>, message: string): void => {
    const b = new GraphBuilder(sd, 'rect');
    b.output(b.op(op, [b.input('input', ['N', 3, 'H', 'W']), b.weight(weight)], attrs, 'rect'), 'output');
    assert.throws(() => convertGraphTo3d(b.build(), { mode: 'acs' }), (e: unknown) => e instanceof ConversionError && e.message === message);
  };
  const tail = ': the three ACS views would not line up (converters/SPEC-acs.md section 15)';
  refused('Conv', 'rect.weight', { kernel_shape: A.ints([3, 5]), pads: A.ints([1, 1, 1, 1]) }, `node 'rect' (Conv): non-square conv whose H and W outputs differ in size (kernel 3x5, strides 1,1, dilations 1,1, pads 1,1,1,1)${tail}`);
  refused('Conv', 'rect.weight', { kernel_shape: A.ints([3, 5]), pads: A.ints([1, 2, 1, 2]), strides: A.ints([1, 2]) }, `node 'rect' (Conv): non-square conv whose H and W outputs differ in size (kernel 3x5, strides 1,2, dilations 1,1, pads 1,2,1,2)${tail}`);
  refused('Conv', 'rect.weight', { kernel_shape: A.ints([3, 5]), pads: A.ints([0, 2, 2, 2]) }, `node 'rect' (Conv): non-square conv whose H and W outputs differ in size (kernel 3x5, strides 1,1, dilations 1,1, pads 0,2,2,2)${tail}`);
  refused('ConvTranspose', 'up.weight', { kernel_shape: A.ints([2, 2]), strides: A.ints([2, 2]), output_padding: A.ints([1, 0]) }, `node 'rect' (ConvTranspose): non-square conv whose H and W outputs differ in size (kernel 2x2, strides 2,2, dilations 1,1, pads 0,0,0,0, output_padding 1,0)${tail}`);

  const flat: StateDict = new Map([
    ['conv.weight', { dtype: 'F32', shape: [2, 3, 3, 3], data: detTensor([2, 3, 3, 3], 3) }],
    ['fc.weight', { dtype: 'F32', shape: [4, 32], data: detTensor([4, 32], 4) }],
  ]);
  const head = new GraphBuilder(flat, 'flat_head');
  head.output(head.linear(head.flatten(head.conv(head.input('input', [1, 3, 4, 4]), 'conv', { pad: 1 })), 'fc'), 'output');
  assert.throws(() => convertGraphTo3d(head.build(), { mode: 'acs' }), (e: unknown) => e instanceof ConversionError && /^node 'fc' \(Gemm\): this classifier takes the feature map flattened by 'flatten' \(32 features/.test(e.message));

  const vgg = (await readCheckpointFile(fixture('goldens', 'vgg16', 'model.pth'))).tensors;
  assert.throws(
    () => convert({ kind: 'state-dict', tensors: vgg }, { mode: 'acs' }),
    (e: unknown) => e instanceof ConversionError && /^vgg16's classifier fits only 2D feature maps \(its first Linear takes a flattened 7x7 map\); a 3D network cannot keep it/.test(e.message),
  );
  assert.equal(convert({ kind: 'state-dict', tensors: vgg }, { mode: 'acs', head: 'features' }).card.output.kind, 'features');
});
