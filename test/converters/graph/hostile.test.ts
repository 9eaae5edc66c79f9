import assert from 'node:assert/strict';
import { test } from 'node:test';
import { convert } from '../../../converters/convert.js';
import { CheckpointFormatError, ConversionError, LimitExceededError } from '../../../converters/errors.js';
import { decodeOnnx, encodeOnnx, onnx } from '../../../converters/formats/onnx.js';
import { A, graphFromModel, graphToModel, type Attr, type Graph, type Node } from '../../../converters/graph/ir.js';
import type { Tensor } from '../../../converters/tensor.js';
import { oneConvGraph } from '../onnx-models.js';

const MiB = 1024 * 1024;

function ints(values: number[]): Tensor {
  return { dtype: 'I64', shape: [values.length], data: BigInt64Array.from(values.map(BigInt)) };
}

/**
 * The one-convolution network with a side branch on its pooled features (N, 1): `branch`
 * adds nodes reading `features` and returns the value added to them.
 */
function withBranch(branch: (add: (op: string, inputs: string[], attrs?: Record<string, Attr>) => string, features: string) => string, constants: Record<string, Tensor> = {}): Graph {
  const g = oneConvGraph(3);
  const nodes: Node[] = [...g.nodes];
  const add = (op: string, inputs: string[], attrs: Record<string, Attr> = {}): string => {
    const name = `${op.toLowerCase()}${nodes.length}`;
    nodes.push({ name, op, domain: '', inputs, outputs: [name], attrs });
    return name;
  };
  const features = g.outputs[0]!.name;
  nodes.push({ name: 'out', op: 'Add', domain: '', inputs: [features, branch(add, features)], outputs: ['out'], attrs: {} });
  const initializers = new Map(g.initializers);
  for (const [k, t] of Object.entries(constants)) initializers.set(k, t);
  return { ...g, nodes, initializers, outputs: [{ name: 'out', dtype: 'F32', shape: null }] };
}

function refused(g: Graph, pattern: RegExp): void {
  assert.throws(() => convert({ kind: 'onnx', graph: g }, { mode: 'acs' }), (err: unknown) => err instanceof ConversionError && pattern.test(err.message));
}

test('shape arithmetic that computes an impossible shape is a 422 naming the node, not a crash', () => {
  const zero = { dtype: 'F32', shape: [1], data: new Float32Array(1) } as Tensor;
  refused(withBranch((add) => add('Expand', ['zero', 'target']), { zero, target: ints([-1, 2]) }), /node 'expand\d+' \(Expand\): its output would have shape \[-1, 2\]/);
  refused(withBranch((add) => add('ConstantOfShape', ['target']), { target: ints([-3, 2]) }), /\(ConstantOfShape\): its output would have shape \[-3, 2\]/);
  refused(
    withBranch((add) => add('Unsqueeze', ['zero', 'axes']), { zero, axes: ints([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]) }),
    /\(Unsqueeze\): its output would have 18 dimensions, more than 16/,
  );
  refused(withBranch((add) => add('Range', ['from', 'to', 'step']), { from: ints([0, 1]), to: ints([4]), step: ints([1]) }), /\(Range\): start, limit and delta must be scalars/);
});

test('axes, pads and shape vectors are bounded by the rank: no vector grows with the input', () => {
  refused(withBranch((add, x) => add('ReduceSum', [add('Unsqueeze', [x, 'last']), 'twice']), { last: ints([2]), twice: ints([2, 2, -1]) }), /axes \[2, 2, -1\] name an axis twice/);
  refused(withBranch((add, x) => add('Slice', [x, 'starts', 'ends', 'axes']), { starts: ints([0, 0]), ends: ints([1, 1]), axes: ints([1, 1]) }), /name an axis twice/);
  refused(withBranch((add, x) => add('Slice', [x, 'starts', 'ends', 'axes']), { starts: ints([0]), ends: ints([1, 1]), axes: ints([1]) }), /starts, ends, axes and steps differ in length/);
  refused(withBranch((add, x) => add('Pad', [x, 'pads']), { pads: ints([0, 0, 0]) }), /\(Pad\): 3 pads for 2 axes; it needs 4/);
  // A shape vector of more than 4096 elements is not a shape vector.
  refused(withBranch((add, x) => add('Slice', [x, 'starts', 'starts', 'starts']), { starts: ints(new Array(5000).fill(0)) }), /its starts \('starts'\) is computed from data/);
});

test('a huge ConstantOfShape or Expand is converted as a node, never folded into a constant', () => {
  // 2^26 x 1 floats of zeros (and an Expand of a scalar to 2^26 x 1), reduced to one value:
  // 256 MiB each at run time; the conversion itself allocates nothing of that size.
  const huge = (): Graph =>
    withBranch(
      (add) => add('Add', [add('ReduceMean', [add('ConstantOfShape', ['shape'])], { axes: A.ints([0]), keepdims: A.int(1) }), add('ReduceMean', [add('Expand', ['one', 'shape'])], { axes: A.ints([0]), keepdims: A.int(1) })]),
      { shape: ints([2 ** 26, 1]), one: { dtype: 'F32', shape: [1], data: Float32Array.from([1]) } },
    );
  const rss = process.memoryUsage().rss;
  const r = convert({ kind: 'onnx', graph: huge() }, { mode: 'acs' });
  assert.ok(process.memoryUsage().rss - rss < 256 * MiB, `rss grew by ${(process.memoryUsage().rss - rss) / MiB} MiB`);
  assert.ok(r.graph.nodes.some((n) => n.op === 'ConstantOfShape') && r.graph.nodes.some((n) => n.op === 'Expand'));
  for (const t of r.graph.initializers.values()) assert.ok(t.data.byteLength < 4096, `an initializer of ${t.data.byteLength} bytes`);
});

test('a tiny initializer that declares enormous dimensions is refused before anything is allocated', () => {
  const model = graphToModel(oneConvGraph(3));
  const rss = process.memoryUsage().rss;
  for (const [dims, kind] of [
    [[65536, 65536], CheckpointFormatError],
    [[2 ** 20, 2 ** 20], LimitExceededError],
  ] as const) {
    const init = { ...model.graph!.initializer![0]!, dims: [...dims], dataType: onnx.TensorProto.DataType.FLOAT, rawData: new Uint8Array(4) };
    const bytes = encodeOnnx({ ...model, graph: { ...model.graph, initializer: [init] } });
    assert.throws(() => graphFromModel(decodeOnnx(bytes), { file: 'tiny.onnx' }), (err: unknown) => err instanceof kind && /tiny\.onnx: initializer 'conv\.weight'/.test((err as Error).message));
  }
  assert.ok(process.memoryUsage().rss - rss < 64 * MiB);
});

test('a graph with no input or no output is refused with its reason, whatever the options', () => {
  const g = oneConvGraph(3);
  // An input that is also a weight is a weight: the graph reads nothing from outside.
  const weightsOnly = { ...g, inputs: [] };
  const noOutput = { ...g, outputs: [] };
  for (const options of [{ mode: 'acs' as const }, { mode: 'acs' as const, inChannels: 1 }, { mode: 'i3d' as const, head: 'features' as const }, { mode: '2.5d' as const, head: 5 }]) {
    assert.throws(() => convert({ kind: 'onnx', graph: weightsOnly }, options), (err: unknown) => err instanceof ConversionError && /has no input besides its weights/.test(err.message), JSON.stringify(options));
    assert.throws(() => convert({ kind: 'onnx', graph: noOutput }, options), (err: unknown) => err instanceof ConversionError && /has no output/.test(err.message), JSON.stringify(options));
  }
  // The same through the ONNX reader: every graph input listed again as an initializer.
  const model = graphToModel(g);
  const decoded = graphFromModel(decodeOnnx(encodeOnnx({ ...model, graph: { ...model.graph, input: [...(model.graph?.input ?? []), ...(model.graph?.initializer ?? []).map((t) => ({ name: t.name }))], initializer: [...(model.graph?.initializer ?? []), { name: g.inputs[0]!.name, dataType: 1, dims: [1], floatData: [0] }] } })));
  assert.equal(decoded.inputs.length, 0);
  assert.throws(() => convert({ kind: 'onnx', graph: decoded }, { mode: 'acs', inChannels: 1 }), /has no input besides its weights/);
});

test('op types, attributes and options named like what every object has are names, nothing more', () => {
  // An op type that matches an inherited property (Object.prototype.constructor, toString, ...)
  // is an unknown op, with or without a constant input (a constant sends it through more tables).
  for (const op of ['constructor', 'toString', 'hasOwnProperty', '__proto__']) {
    for (const withConstant of [false, true]) {
      const g = withBranch((add, x) => add(op, withConstant ? [x, 'two'] : [x]), { two: { dtype: 'F32', shape: [1], data: Float32Array.from([2]) } });
      refused(g, new RegExp(`op '${op}' is not supported by the shape inference`));
    }
  }
  // An attribute named '__proto__' is an attribute: the node's other attributes stay its own.
  const model = graphToModel(oneConvGraph(3));
  const conv = model.graph!.node!.find((n) => n.opType === 'Conv')!;
  conv.attribute = [...(conv.attribute ?? []), { name: '__proto__', type: onnx.AttributeProto.AttributeType.INTS, ints: [7, 7] }];
  const decoded = graphFromModel(decodeOnnx(encodeOnnx(model)));
  const attrs = decoded.nodes.find((n) => n.op === 'Conv')!.attrs;
  assert.equal(Object.getPrototypeOf(attrs), Object.prototype);
  assert.ok(Object.hasOwn(attrs, '__proto__'));
  assert.equal((attrs as Record<string, unknown>)['type'], undefined, 'nothing inherited from the hostile attribute');
  // An axis option named like one is refused by name.
  for (const axis of ['constructor', 'toString', '__proto__']) {
    assert.throws(() => convert({ kind: 'onnx', graph: oneConvGraph(3) }, { mode: '2.5d', axis: axis as 'd' }), /axis must be d, h or w, got/);
  }
});
