import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { convert } from '../../../converters/convert.js';
import { ConversionError, LimitExceededError } from '../../../converters/errors.js';
import { encodeOnnx } from '../../../converters/formats/onnx.js';
import { GraphBuilder } from '../../../converters/graph/builder.js';
import { A, graphToModel, type Attr, type Graph } from '../../../converters/graph/ir.js';
import { collapsedPlacement } from '../../../converters/graph/lower-conv-transpose.js';
import { convertGraphTo3d } from '../../../converters/graph/to3d.js';
import type { StateDict, Tensor } from '../../../converters/tensor.js';
import { assertClose, detTensor, prng } from '../../helpers.js';

const MODES = ['acs', '2.5d', 'i3d', 'mean-acs', 'soft-acs'] as const;

async function run(graph: Graph, input: Float32Array, shape: number[]): Promise<{ data: Float32Array; dims: readonly number[] }> {
  const session = await ort.InferenceSession.create(encodeOnnx(graphToModel(graph)), { intraOpNumThreads: 1 });
  try {
    const out = (await session.run({ input: new ort.Tensor('float32', input, shape) }))['output']!;
    return { data: out.data as Float32Array, dims: out.dims };
  } finally {
    await session.release();
  }
}

interface Settings {
  k: number;
  s: number;
  p: number;
  d: number;
  op: number;
  g: number;
}

/** A 2D graph of one ConvTranspose (`up.weight` (cin, cout/g, k, k), `up.bias`). */
function transposeGraph(cin: number, cout: number, c: Settings, seed: number, extra: Record<string, Attr> = {}): Graph {
  const shape = [cin, cout / c.g, c.k, c.k];
  const sd: StateDict = new Map([
    ['up.weight', { dtype: 'F32', shape, data: detTensor(shape, seed, 0.5) }],
    ['up.bias', { dtype: 'F32', shape: [cout], data: detTensor([cout], seed + 1, 0.5) }],
  ]);
  const b = new GraphBuilder(sd, 'up');
  const attrs = { kernel_shape: A.ints([c.k, c.k]), strides: A.ints([c.s, c.s]), pads: A.ints([c.p, c.p, c.p, c.p]), dilations: A.ints([c.d, c.d]), output_padding: A.ints([c.op, c.op]), group: A.int(c.g), ...extra };
  b.output(b.op('ConvTranspose', [b.input('input', ['N', cin, 'H', 'W']), b.weight('up.weight'), b.weight('up.bias')], attrs, 'up'), 'output');
  return b.build();
}

/** The flipped, transposed kernel of each group: (Cout, Cin/g, k, k), W'[o, c, a, b] = W[c, o, k-1-a, k-1-b]. */
function flippedKernel(w: Tensor, g: number): Tensor {
  const [cin, opg, k] = w.shape as [number, number, number];
  const ipg = cin / g;
  const src = w.data as Float32Array;
  const out = new Float32Array(src.length);
  for (let gi = 0; gi < g; gi++) {
    for (let o = 0; o < opg; o++) {
      for (let c = 0; c < ipg; c++) {
        for (let a = 0; a < k; a++) {
          for (let b = 0; b < k; b++) {
            out[(((gi * opg + o) * ipg + c) * k + a) * k + b] = src[(((gi * ipg + c) * opg + o) * k + (k - 1 - a)) * k + (k - 1 - b)]!;
          }
        }
      }
    }
  }
  return { dtype: 'F32', shape: [opg * g, ipg, k, k], data: out };
}

test('property: with unit stride an ACS ConvTranspose equals the ACS Conv of the flipped, transposed kernel (padding d(k-1) - p)', async () => {
  const rnd = prng(11);
  const pick = (n: number) => Math.floor(rnd() * n);
  let trials = 0;
  while (trials < 24) {
    const k = 1 + pick(5);
    const d = k % 2 === 1 && pick(3) === 0 ? 2 : 1;
    // d = 1 with any padding; dilated kernels when "same" (k odd, 2p = d(k-1)), where both read the centre.
    const p = d === 1 ? pick(k) : (d * (k - 1)) / 2;
    const g = pick(2) + 1;
    const grow = d * (k - 1) - 2 * p;
    // Sizes where the conv reads by its first plane rule with 2 * n_out = n differ (section 14).
    const sizes = [0, 1, 2].map(() => 3 + pick(7)).map((n) => (n === -2 * grow ? n + 1 : n));
    if (sizes.some((n) => n + grow < 1)) continue;
    trials++;
    const t2 = transposeGraph(4, 6, { k, s: 1, p, d, op: 0, g }, trials);
    const w = t2.initializers.get('up.weight')!;
    const sd: StateDict = new Map([
      ['conv.weight', flippedKernel(w, g)],
      ['conv.bias', t2.initializers.get('up.bias')!],
    ]);
    const b = new GraphBuilder(sd, 'flipped');
    b.output(b.conv(b.input('input', ['N', 4, 'H', 'W']), 'conv', { pad: d * (k - 1) - p, dilation: d, group: g }), 'output');
    const shape = [1, 4, ...sizes];
    const x = detTensor(shape, 100 + trials);
    const [a, c] = [await run(convertGraphTo3d(t2, { mode: 'acs' }).graph, x, shape), await run(convertGraphTo3d(b.build(), { mode: 'acs' }).graph, x, shape)];
    const what = `k=${k} p=${p} d=${d} g=${g} at ${sizes.join('x')}`;
    assert.deepEqual(a.dims, c.dims, what);
    assertClose(a.data, c.data, { rtol: 1e-5, atol: 1e-5, what });
  }
});

test('sizes: every mode gives (n-1)s - 2p + d(k-1) + 1 + output_padding on every axis, for 30 random transposed convs', async () => {
  const rnd = prng(5);
  const pick = (n: number) => Math.floor(rnd() * n);
  for (let trial = 0; trial < 30; trial++) {
    const k = 1 + pick(5);
    const s = 1 + pick(3);
    const d = 1 + pick(2);
    const p = pick(d * (k - 1) + 1);
    const op = pick(Math.max(s, d));
    const g = pick(3) === 0 ? 3 : 1;
    const sizes = [0, 1, 2].map(() => 2 + pick(6));
    const out = sizes.map((n) => (n - 1) * s - 2 * p + d * (k - 1) + 1 + op);
    if (out.some((n) => n < 1)) continue;
    const g2 = transposeGraph(6, 3 * g, { k, s, p, d, op, g }, trial);
    const shape = [1, 6, ...sizes];
    const x = detTensor(shape, trial);
    for (const mode of MODES) {
      const r = await run(convertGraphTo3d(g2, { mode, axis: mode === 'i3d' ? 1 : 2 }).graph, x, shape);
      assert.deepEqual(r.dims, [1, 3 * g, ...out], `${mode}: k=${k} s=${s} p=${p} d=${d} op=${op} g=${g} at ${sizes.join('x')}`);
    }
  }
});

test('collapsed axis: input plane i lands on i*s + d*floor((k-1)/2) - p; the planes between hold the bias', async () => {
  assert.deepEqual(collapsedPlacement({ k: 2, s: 2, p: 0, d: 1 }, 0), { shift: 0, extra: 1 });
  assert.deepEqual(collapsedPlacement({ k: 3, s: 2, p: 1, d: 1 }, 1), { shift: 0, extra: 1 });
  assert.deepEqual(collapsedPlacement({ k: 5, s: 1, p: 1, d: 1 }, 0), { shift: 1, extra: 1 });
  assert.deepEqual(collapsedPlacement({ k: 3, s: 1, p: 2, d: 1 }, 0), { shift: -1, extra: -1 });
  // One input channel, one output channel per part (Cout = 3), a kernel of ones, bias 0.5 on the
  // axial part's channel: the axial output along D at the centre of H and W is (plane read) + 1.5,
  // and 0.5 (the bias alone) on a plane that receives nothing.
  for (const [c, n, planes] of [
    [{ k: 2, s: 2, p: 0, d: 1, op: 0, g: 1 }, 3, [1.5, 0.5, 2.5, 0.5, 3.5, 0.5]],
    [{ k: 3, s: 2, p: 1, d: 1, op: 1, g: 1 }, 3, [1.5, 0.5, 2.5, 0.5, 3.5, 0.5]],
    [{ k: 5, s: 1, p: 1, d: 1, op: 0, g: 1 }, 3, [0.5, 1.5, 2.5, 3.5, 0.5]],
    // a 3x3 plane (a 1x1 one would have no output): output (0, 0) sums 3 x 3 taps of plane 1
    [{ k: 3, s: 1, p: 2, d: 1, op: 0, g: 1 }, 3, [18.5]],
  ] as [Settings, number, number[]][]) {
    const sd: StateDict = new Map([
      ['up.weight', { dtype: 'F32', shape: [1, 3, c.k, c.k], data: new Float32Array(3 * c.k * c.k).fill(1) }],
      ['up.bias', { dtype: 'F32', shape: [3], data: new Float32Array([0.5, 0, 0]) }],
    ]);
    const b = new GraphBuilder(sd, 'planes');
    b.output(b.op('ConvTranspose', [b.input('input', ['N', 1, 'H', 'W']), b.weight('up.weight'), b.weight('up.bias')], { kernel_shape: A.ints([c.k, c.k]), strides: A.ints([c.s, c.s]), pads: A.ints([c.p, c.p, c.p, c.p]), output_padding: A.ints([c.op, c.op]) }, 'up'), 'output');
    const hw = c.p === 2 ? 3 : 1;
    const x = new Float32Array(n * hw * hw).map((_, i) => Math.floor(i / (hw * hw)) + 1);
    const y = await run(convertGraphTo3d(b.build(), { mode: 'acs' }).graph, x, [1, 1, n, hw, hw]);
    const [, , dOut, hOut, wOut] = y.dims as number[];
    assert.equal(dOut, planes.length);
    const centre = Math.floor(hOut! / 2) * wOut! + Math.floor(wOut! / 2);
    const got = Array.from({ length: dOut! }, (_, i) => y.data[i * hOut! * wOut! + centre]!);
    assert.deepEqual(got, planes, `k=${c.k} s=${c.s} p=${c.p} op=${c.op}`);
  }
});

test('hostile transposed convs: malformed settings are refused by name, an inflated kernel meets the output budget', () => {
  const refuse = (g: () => Graph, pattern: RegExp) => assert.throws(() => convertGraphTo3d(g(), { mode: 'acs' }), (e: unknown) => e instanceof ConversionError && pattern.test(e.message));
  const base = { k: 3, s: 2, p: 1, d: 1, op: 0, g: 1 };
  refuse(() => transposeGraph(4, 6, { ...base, op: 2 }, 1), /^node 'up' \(ConvTranspose\): kernel 3x3, strides 2,2, dilations 1,1, pads 1,1,1,1, output_padding 2,2: each must be at least 1/);
  refuse(() => transposeGraph(4, 6, base, 1, { strides: A.ints([0, 0]) }), /strides 0,0/);
  refuse(() => transposeGraph(4, 6, base, 1, { pads: A.ints([-1, -1, -1, -1]) }), /pads -1,-1,-1,-1/);
  refuse(() => transposeGraph(4, 6, base, 1, { kernel_shape: A.ints([3, 3, 3]) }), /do not fit 2 spatial axes|do not fit a 2D convolution/);
  refuse(() => transposeGraph(4, 6, base, 1, { kernel_shape: A.ints([5, 5]) }), /kernel_shape 5x5 does not match the weight \[4, 6, 3, 3\]/);
  refuse(() => transposeGraph(4, 6, base, 1, { auto_pad: A.str('SAME_UPPER') }), /auto_pad and output_shape are not supported/);
  refuse(() => transposeGraph(4, 6, base, 1, { group: A.int(3) }), /does not fit 4 input channels in 3 groups/);
  // A stride that makes a size past what a tensor can hold fails in the shape inference.
  refuse(() => transposeGraph(4, 6, base, 1, { strides: A.ints([2 ** 52, 2 ** 52]) }), /its output would have shape/);
  // Depth: 60 stride-2 up-convolutions in a row double the size past what a tensor can hold.
  const deep = (): Graph => {
    const sd: StateDict = new Map([['up.weight', { dtype: 'F32', shape: [2, 2, 2, 2], data: new Float32Array(16).fill(0.25) }]]);
    const b = new GraphBuilder(sd, 'deep');
    let x = b.input('input', ['N', 2, 'H', 'W']);
    for (let i = 0; i < 60; i++) x = b.op('ConvTranspose', [x, b.weight('up.weight')], { kernel_shape: A.ints([2, 2]), strides: A.ints([2, 2]) }, `up${i}`);
    b.output(x, 'output');
    return b.build();
  };
  refuse(deep, /^node 'up\d+' \(ConvTranspose\): its output would have shape/);
  // Amplification: i3d stacks a 1x4096 kernel 4096 times along W; the output budget refuses it first.
  const wide = (): Graph => {
    const shape = [8, 8, 1, 4096];
    const sd: StateDict = new Map([['up.weight', { dtype: 'F32', shape, data: new Float32Array(8 * 8 * 4096) }]]);
    const b = new GraphBuilder(sd, 'wide');
    b.output(b.op('ConvTranspose', [b.input('input', ['N', 8, 'H', 'W']), b.weight('up.weight')], { kernel_shape: A.ints([1, 4096]), pads: A.ints([0, 2047, 0, 2048]) }, 'up'), 'output');
    return b.build();
  };
  assert.throws(
    () => convert({ kind: 'onnx', graph: wide() }, { mode: 'i3d', axis: 'w' }, { budgets: { conversionOutputBytes: 256 * 2 ** 20 } }),
    (e: unknown) => e instanceof LimitExceededError && /budgets\.conversionOutputBytes/.test(e.message),
  );
  const ok = convert({ kind: 'onnx', graph: transposeGraph(4, 6, base, 1) }, { mode: 'soft-acs' });
  assert.deepEqual(ok.stateDict.get('up.soft_w_core')?.shape, [6, 3], 'soft_w_core has one row per output channel');
});
