import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { encodeOnnx } from '../../../converters/formats/onnx.js';
import { GraphBuilder } from '../../../converters/graph/builder.js';
import { A, graphToModel, type Graph } from '../../../converters/graph/ir.js';
import { convertGraphTo3d } from '../../../converters/graph/to3d.js';
import { acsSplit } from '../../../converters/modes/split.js';
import type { StateDict } from '../../../converters/tensor.js';
import { assertClose, detTensor, prng } from '../../helpers.js';

/** A 2D graph of one convolution. */
function oneConv(cin: number, cout: number, k: number, o: { stride?: number; pad?: number; dilation?: number; group?: number; bias?: boolean }, seed: number): Graph {
  const g = o.group ?? 1;
  const sd: StateDict = new Map();
  sd.set('conv.weight', { dtype: 'F32', shape: [cout, cin / g, k, k], data: detTensor([cout, cin / g, k, k], seed, 0.3) });
  if (o.bias) sd.set('conv.bias', { dtype: 'F32', shape: [cout], data: detTensor([cout], seed + 1) });
  const b = new GraphBuilder(sd, 'one_conv');
  b.output(b.conv(b.input('input', ['N', cin, 'H', 'W']), 'conv', o), 'output');
  return b.build();
}

async function run(graph: Graph, input: Float32Array, shape: number[]): Promise<{ data: Float32Array; dims: readonly number[] }> {
  const session = await ort.InferenceSession.create(encodeOnnx(graphToModel(graph)));
  const out = (await session.run({ input: new ort.Tensor('float32', input, shape) }))['output']!;
  return { data: out.data as Float32Array, dims: out.dims };
}

/** The dense 3D convolution whose kernel holds each ACS part's 2D kernel in its central plane. */
function denseEquivalent(cin: number, cout: number, k: number, o: { stride?: number; pad?: number; group?: number; bias?: boolean }, seed: number): Graph {
  const g = o.group ?? 1;
  const w2 = detTensor([cout, cin / g, k, k], seed, 0.3);
  const w3 = new Float32Array(cout * (cin / g) * k ** 3);
  const c = Math.floor(k / 2);
  const parts = g === 1 ? acsSplit(cout) : acsSplit(g).map((n) => n * (cout / g));
  let o0 = 0;
  parts.forEach((n, axis) => {
    for (let oc = o0; oc < o0 + n; oc++) {
      for (let i = 0; i < cin / g; i++) {
        for (let a = 0; a < k; a++) {
          for (let bb = 0; bb < k; bb++) {
            const idx = axis === 0 ? [c, a, bb] : axis === 1 ? [a, c, bb] : [a, bb, c];
            w3[((oc * (cin / g) + i) * k + idx[0]!) * k * k + idx[1]! * k + idx[2]!] = w2[((oc * (cin / g) + i) * k + a) * k + bb]!;
          }
        }
      }
    }
    o0 += n;
  });
  const p = o.pad ?? 0;
  const s = o.stride ?? 1;
  const initializers = new Map([['w', { dtype: 'F32' as const, shape: [cout, cin / g, k, k, k], data: w3 }]]);
  const inputs = ['input', 'w'];
  if (o.bias) {
    initializers.set('b', { dtype: 'F32', shape: [cout], data: detTensor([cout], seed + 1) } as never);
    inputs.push('b');
  }
  return {
    name: 'dense',
    opset: 17,
    metadata: {},
    inputs: [{ name: 'input', dtype: 'F32', shape: ['N', cin, 'D', 'H', 'W'] }],
    outputs: [{ name: 'output', dtype: 'F32', shape: null }],
    initializers,
    nodes: [
      {
        name: 'conv',
        op: 'Conv',
        domain: '',
        inputs,
        outputs: ['output'],
        attrs: { kernel_shape: A.ints([k, k, k]), strides: A.ints([s, s, s]), pads: A.ints([p, p, p, p, p, p]), group: A.int(g) },
      },
    ],
  };
}

test('acs split: (q+[r>=1], q+[r>=2], q)', () => {
  assert.deepEqual(acsSplit(64), [22, 21, 21]);
  assert.deepEqual(acsSplit(10), [4, 3, 3]);
  assert.deepEqual(acsSplit(2), [1, 1, 0]);
  assert.deepEqual(acsSplit(1), [1, 0, 0]);
  assert.deepEqual(acsSplit(3), [1, 1, 1]);
});

test('property: ACS equals a dense 3D convolution with each part kernel in its central plane ("same" padding)', async () => {
  const r = prng(42);
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]!;
  for (let trial = 0; trial < 24; trial++) {
    const k = pick([1, 3, 5, 7]);
    const s = pick([1, 2, 3]);
    const depthwise = r() < 0.25;
    const cin = depthwise ? pick([3, 4, 6]) : pick([1, 2, 3, 5]);
    const cout = depthwise ? cin : pick([1, 2, 4, 7, 9]);
    const group = depthwise ? cin : 1;
    const o = { stride: s, pad: Math.floor(k / 2), group, bias: r() < 0.5 };
    const shape = [pick([1, 2]), cin, 5 + Math.floor(r() * 6), 5 + Math.floor(r() * 6), 5 + Math.floor(r() * 6)];
    const input = detTensor(shape, 100 + trial);
    const { graph } = convertGraphTo3d(oneConv(cin, cout, k, o, trial), { mode: 'acs' });
    const acs = await run(graph, input, shape);
    const dense = await run(denseEquivalent(cin, cout, k, o, trial), input, shape);
    assert.deepEqual(acs.dims, dense.dims, `trial ${trial}: output shape`);
    assertClose(acs.data, dense.data, { rtol: 1e-5, atol: 1e-5, what: `trial ${trial} k=${k} s=${s} cin=${cin} cout=${cout} g=${group}` });
  }
});

test('property: i3d on a volume constant along the repeat axis equals the 2D convolution on one slice', async () => {
  for (const [k, s] of [[3, 1], [5, 2], [1, 1]] as const) {
    const cin = 3;
    const cout = 4;
    const p = Math.floor(k / 2);
    const g2 = oneConv(cin, cout, k, { stride: s, pad: p, bias: true }, 7);
    const [h, w] = [9, 11];
    const slice = detTensor([1, cin, h, w], 8);
    const out2 = await run(g2, slice, [1, cin, h, w]);
    const depth = 2 * k + 3;
    const vol = new Float32Array(cin * depth * h * w);
    for (let c = 0; c < cin; c++) for (let d = 0; d < depth; d++) vol.set(slice.subarray(c * h * w, (c + 1) * h * w), (c * depth + d) * h * w);
    const { graph } = convertGraphTo3d(g2, { mode: 'i3d', axis: 0 });
    const out3 = await run(graph, vol, [1, cin, depth, h, w]);
    const [, , d3, h3, w3] = out3.dims as number[];
    const mid = Math.floor(d3! / 2);
    const sliceOut = new Float32Array(cout * h3! * w3!);
    for (let c = 0; c < cout; c++) sliceOut.set(out3.data.subarray(((c * d3!) + mid) * h3! * w3!, ((c * d3!) + mid + 1) * h3! * w3!), c * h3! * w3!);
    assertClose(sliceOut, out2.data, { rtol: 1e-5, atol: 1e-5, what: `k=${k} s=${s}` });
  }
});

test('property: 1x1 convolutions are identical in every mode', async () => {
  const g2 = oneConv(5, 7, 1, { bias: true }, 3);
  const shape = [2, 5, 4, 5, 6];
  const input = detTensor(shape, 9);
  const ref = await run(convertGraphTo3d(g2, { mode: 'i3d' }).graph, input, shape);
  for (const mode of ['acs', '2.5d', 'mean-acs', 'soft-acs'] as const) {
    const out = await run(convertGraphTo3d(g2, { mode }).graph, input, shape);
    assertClose(out.data, ref.data, { rtol: 1e-5, atol: 1e-6, what: mode });
  }
});
