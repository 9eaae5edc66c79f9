import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resnetBasicStateDict } from '../../bench/synthetic.js';
import { DEFAULT_BUDGETS } from '../../converters/budgets.js';
import { convert, MODES, type ConvertOptions, type ConvertSource } from '../../converters/convert.js';
import { LimitExceededError } from '../../converters/errors.js';
import { A, type Graph, type Node } from '../../converters/graph/ir.js';
import { encodeOutput, type OutputFormat } from '../../converters/outputs.js';
import type { Tensor } from '../../converters/tensor.js';
import { detTensor } from '../helpers.js';
import { oneConvGraph } from './onnx-models.js';

// The weight files: model.py is source text, a few kilobytes whatever the weights.
const FORMATS: Exclude<OutputFormat, 'py'>[] = ['safetensors', 'pth', 'onnx'];
const MiB = 1024 * 1024;

/** The sizes the converter predicts, read from its refusal under a budget of one byte. */
function predicted(source: () => ConvertSource, options: ConvertOptions): Record<Exclude<OutputFormat, 'py'>, number> {
  try {
    convert(source(), options, { budgets: { conversionOutputBytes: 1 } });
  } catch (err) {
    const m = /would write up to \d+ bytes \(model\.safetensors (\d+), model\.pth (\d+), model\.onnx (\d+)\)/.exec((err as Error).message);
    if (m) return { safetensors: Number(m[1]), pth: Number(m[2]), onnx: Number(m[3]) };
    throw err;
  }
  throw new Error('a budget of one byte was not refused');
}

function encodedSizes(source: ConvertSource, options: ConvertOptions): Record<Exclude<OutputFormat, 'py'>, number> {
  const r = convert(source, options);
  const size = (f: Exclude<OutputFormat, 'py'>) => [...encodeOutput(r, f, `model.${f}`).values()].flat().reduce((a, c) => a + c.byteLength, 0);
  return { safetensors: size('safetensors'), pth: size('pth'), onnx: size('onnx') };
}

function f32(shape: number[], seed: number): Tensor {
  return { dtype: 'F32', shape, data: detTensor(shape, seed, 0.1) };
}

/**
 * A 2D graph made to grow: names of `nameLength` characters, `convs` convolutions (sharing one
 * kernel when `shared`), each followed by a BatchNorm, a ReLU, an Add of one broadcast
 * constant and a Reshape whose target is computed from the shape, then a Linear head.
 */
function growingGraph(o: { nameLength: number; convs: number; shared: boolean; k: number; pad: number; stride: number }): Graph {
  const long = (s: string) => `${s}.${'n'.repeat(o.nameLength)}`;
  const C = 8;
  const initializers = new Map<string, Tensor>();
  const nodes: Node[] = [];
  const node = (op: string, inputs: string[], attrs: Node['attrs'] = {}, name = long(`${op}${nodes.length}`)): string => {
    nodes.push({ name, op, domain: '', inputs, outputs: [name], attrs });
    return name;
  };
  initializers.set(long('shift'), f32([C, 1, 1], 9));
  initializers.set(long('zero'), { dtype: 'I64', shape: [1], data: BigInt64Array.from([0n]) });
  let x = 'input';
  for (let i = 0; i < o.convs; i++) {
    const w = long(o.shared ? 'kernel' : `kernel${i}`);
    initializers.set(w, f32([C, C, o.k, o.k], 1));
    initializers.set(long(`bias${i}`), f32([C], 2 + i));
    x = node('Conv', [x, w, long(`bias${i}`)], { kernel_shape: A.ints([o.k, o.k]), pads: A.ints([o.pad, o.pad, o.pad, o.pad]), strides: A.ints([o.stride, o.stride]) });
    const bn = ['gamma', 'beta', 'mean', 'var'].map((p) => long(`${p}${i}`));
    bn.forEach((p, j) => initializers.set(p, j === 3 ? { dtype: 'F32', shape: [C], data: new Float32Array(C).fill(1) } : f32([C], 20 + j)));
    x = node('BatchNormalization', [x, ...bn]);
    x = node('Relu', [x]);
    x = node('Add', [x, long('shift')]);
    const shape = node('Shape', [x]);
    x = node('Reshape', [x, node('Concat', [long('zero'), node('Slice', [shape, ...['one', 'four'].map((s) => long(s))])], { axis: A.int(0) })]);
  }
  initializers.set(long('one'), { dtype: 'I64', shape: [1], data: BigInt64Array.from([1n]) });
  initializers.set(long('four'), { dtype: 'I64', shape: [1], data: BigInt64Array.from([4n]) });
  initializers.set(long('fc.weight'), f32([10, C], 30));
  x = node('Flatten', [node('GlobalAveragePool', [x])], { axis: A.int(1) });
  node('Gemm', [x, long('fc.weight')], { transB: A.int(1) }, 'output');
  return { name: long('grows'), nodes, inputs: [{ name: 'input', dtype: 'F32', shape: ['N', C, 'H', 'W'] }], outputs: [{ name: 'output', dtype: 'F32', shape: null }], initializers, opset: 17, metadata: {} };
}

test('the predicted output size bounds every encoded output: every mode and lowering, long names, a shared kernel, shape arithmetic', () => {
  const cases = [
    { nameLength: 8, convs: 2, shared: false, k: 3, pad: 1, stride: 1 },
    { nameLength: 3000, convs: 2, shared: false, k: 3, pad: 0, stride: 2 },
    { nameLength: 3000, convs: 2, shared: false, k: 5, pad: 1, stride: 1 },
    { nameLength: 200, convs: 12, shared: true, k: 3, pad: 1, stride: 1 },
    { nameLength: 3000, convs: 2, shared: true, k: 1, pad: 0, stride: 1 },
  ];
  // The folded lowering applies to ACS views only.
  const variants: ConvertOptions[] = [...MODES.map((mode) => ({ mode })), { mode: 'acs', lowering: 'fold2d' }];
  for (const c of cases) {
    for (const options of variants) {
      const source = (): ConvertSource => ({ kind: 'onnx', graph: growingGraph(c) });
      const p = predicted(source, options);
      const actual = encodedSizes(source(), options);
      for (const f of FORMATS) assert.ok(p[f] >= actual[f], `${JSON.stringify(c)} ${JSON.stringify(options)}: ${f} predicted ${p[f]} < ${actual[f]} encoded`);
    }
  }
});

test('the prediction is close for a real network (a full-width ResNet-10): within 10% in every mode', () => {
  const sd = resnetBasicStateDict([1, 1, 1, 1]);
  for (const mode of MODES) {
    const source = (): ConvertSource => ({ kind: 'state-dict', tensors: sd });
    const p = predicted(source, { mode });
    const actual = encodedSizes(source(), { mode });
    const [pt, at] = [p, actual].map((s) => s.safetensors + s.pth + s.onnx) as [number, number];
    assert.ok(pt >= at && pt <= 1.1 * at, `${mode}: predicted ${pt} for ${at} encoded`);
  }
});

test('i3d of one 1024x1024 kernel (a 4 MiB model) is refused before it allocates its 4 GiB kernels', () => {
  const rss = process.memoryUsage().rss;
  assert.throws(
    () => convert({ kind: 'onnx', graph: oneConvGraph(1024) }, { mode: 'i3d' }),
    (err: unknown) =>
      err instanceof LimitExceededError &&
      /^the i3d conversion of 'one_conv' would write up to (\d+) bytes \(model\.safetensors \d+, model\.pth \d+, model\.onnx \d+\), more than 8589934592 \(budgets\.conversionOutputBytes\)$/.test(err.message) &&
      Number(/up to (\d+)/.exec(err.message)![1]) >= 3 * 4 * 1024 ** 3,
  );
  assert.ok(process.memoryUsage().rss - rss < 256 * MiB, `rss grew by ${(process.memoryUsage().rss - rss) / MiB} MiB`);
  // ACS keeps the kernel's size: the same model converts.
  assert.equal(convert({ kind: 'onnx', graph: oneConvGraph(1024) }, { mode: 'acs' }).stateDict.get('conv.weight')!.data.byteLength, 4 * MiB);
});

test('one kernel shared by many convolutions is counted once per convolution', () => {
  // 9000 convolutions read one 512x512 kernel (1 MiB): the 3D graph would hold 9000 copies.
  const g = oneConvGraph(512);
  const conv = g.nodes.find((n) => n.op === 'Conv')!;
  const copies = Array.from({ length: 9000 }, (_, i) => ({ ...conv, name: `conv${i}`, outputs: [`y${i}`] }));
  const sum: Node = { name: 'sum', op: 'Sum', domain: '', inputs: copies.map((c) => c.outputs[0]!), outputs: [conv.outputs[0]!], attrs: {} };
  const shared: Graph = { ...g, nodes: [...copies, sum, ...g.nodes.filter((n) => n !== conv)] };
  const rss = process.memoryUsage().rss;
  assert.throws(() => convert({ kind: 'onnx', graph: shared }, { mode: 'acs' }), (err: unknown) => err instanceof LimitExceededError && /model\.onnx (\d{10,})/.test(err.message));
  assert.ok(process.memoryUsage().rss - rss < 256 * MiB);
  assert.ok(DEFAULT_BUDGETS.conversionOutputBytes < 9000 * MiB);
});

test('a new head or an adapted stem that would pass the budget is refused before it is allocated', () => {
  // A 1000000-class head on 4096 features: 16 GB of weights.
  const sd = new Map<string, Tensor>([
    ['conv.weight', f32([4096, 1, 1, 1], 1)],
    ['fc.weight', f32([1, 4096], 2)],
  ]);
  const headGraph = (): Graph => {
    const g = oneConvGraph(1);
    const features = g.outputs[0]!.name;
    const fc: Node = { name: 'fc', op: 'Gemm', domain: '', inputs: [features, 'fc.weight'], outputs: ['logits'], attrs: { transB: A.int(1) } };
    return { ...g, initializers: new Map(sd), nodes: [...g.nodes, fc], outputs: [{ name: 'logits', dtype: 'F32', shape: null }] };
  };
  const rss = process.memoryUsage().rss;
  assert.throws(() => convert({ kind: 'onnx', graph: headGraph() }, { mode: 'acs', head: 1_000_000 }), /^LimitExceededError: a new head of 1000000 classes would write up to \d+ bytes, more than 8589934592 \(budgets\.conversionOutputBytes\)$/);
  assert.equal(convert({ kind: 'onnx', graph: headGraph() }, { mode: 'acs', head: 5 }).graph.initializers.get('head.weight')!.shape.join(), '5,4096');

  // A 64x3x11x11 stem adapted to 1024 channels: 95 MB, three times.
  const stem = oneConvGraph(11, 3);
  stem.initializers.set('conv.weight', f32([64, 3, 11, 11], 3));
  assert.throws(
    () => convert({ kind: 'onnx', graph: stem }, { mode: 'acs', inChannels: 1024 }, { budgets: { conversionOutputBytes: 64 * MiB } }),
    /^LimitExceededError: the stem adapted to 1024 input channels would write up to \d+ bytes, more than 67108864 \(budgets\.conversionOutputBytes\)$/,
  );
  assert.ok(process.memoryUsage().rss - rss < 256 * MiB);
});
