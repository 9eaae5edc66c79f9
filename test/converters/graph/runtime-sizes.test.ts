/**
 * The rules of converters/SPEC-acs.md section 18 on hand-made graphs: deduplicated and shared
 * initializers, the aux option, and what is refused (fixed sizes in a free-size graph, sizes
 * that swap axes, shape vectors built to make the tracer work without end).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { convert, type Mode } from '../../../converters/convert.js';
import { loadSource } from '../../../converters/convert-file.js';
import { AcsHubError, InvalidArgumentError } from '../../../converters/errors.js';
import { GraphBuilder } from '../../../converters/graph/builder.js';
import { A, type Graph } from '../../../converters/graph/ir.js';
import type { StateDict, Tensor } from '../../../converters/tensor.js';
import { canonicalOptions } from '../../../zoo/convert-model.js';
import { assertClose, detTensor, fixture } from '../../helpers.js';
import { runGraph } from '../goldens/goldens.js';

const t = (shape: number[], seed: number, scale = 0.3, shift = 0): Tensor => ({ dtype: 'F32', shape, data: detTensor(shape, seed, scale).map((v) => v + shift) });

const SD: StateDict = new Map([
  ['a.weight', t([6, 3, 3, 3], 1)],
  ['b.weight', t([6, 6, 3, 3], 2)],
  ['b.bias', t([6], 3, 0.1)],
  ['b2.weight', t([6, 6, 3, 3], 2)],
  ['b2.bias', t([6], 3, 0.1)],
  ['zero', { dtype: 'F32', shape: [6], data: new Float32Array(6) }],
  ...['bn1', 'bn2'].flatMap((p, i): [string, Tensor][] => [
    [`${p}.weight`, t([6], 10 + i, 0.2, 1)],
    [`${p}.bias`, t([6], 20 + i, 0.1)],
    [`${p}.running_mean`, t([6], 30 + i, 0.1)],
    [`${p}.running_var`, t([6], 40 + i, 0.2, 1)],
  ]),
]);

/**
 * a: conv (bias: an Identity of the zero initializer); then conv `b` twice, each followed by
 * its own BatchNorm: with `shared`, both read one initializer (as a module applied twice
 * exports); without, each reads its own copy (b, b2).
 */
function sharedGraph(shared: boolean): Graph {
  const b = new GraphBuilder(SD, shared ? 'shared' : 'copies');
  const x = b.input('input', ['N', 3, 'H', 'W']);
  const bias = b.op('Identity', [b.weight('zero')], {}, 'dedup');
  const conv = (v: string, w: string, bi: string) =>
    b.op('Conv', [v, b.weight(w), bi], { kernel_shape: A.ints([3, 3]), pads: A.ints([2, 2, 2, 2]), dilations: A.ints([2, 2]) });
  let y = b.relu(conv(x, 'a.weight', bias));
  y = b.relu(b.bn(conv(y, 'b.weight', b.weight('b.bias')), 'bn1'));
  y = b.bn(conv(y, shared ? 'b.weight' : 'b2.weight', b.weight(shared ? 'b.bias' : 'b2.bias')), 'bn2');
  b.output(y, 'output');
  return b.build();
}

test('an Identity of an initializer and one weight read by two convolutions (each with its own BatchNorm) convert in every mode', async () => {
  const shape = [1, 3, 7, 9, 11];
  const input = detTensor(shape, 4);
  for (const mode of ['acs', '2.5d', 'i3d', 'mean-acs', 'soft-acs'] as Mode[]) {
    const shared = convert({ kind: 'onnx', graph: sharedGraph(true) }, { mode });
    const copies = convert({ kind: 'onnx', graph: sharedGraph(false) }, { mode });
    const a = await runGraph(shared.graph, input, shape);
    const b = await runGraph(copies.graph, input, shape);
    assert.deepEqual(a.dims, [1, 6, 7, 9, 11], mode);
    assertClose(a.data, b.data, { rtol: 1e-5, atol: 1e-5, what: mode });
    assert.ok(!shared.graph.nodes.some((n) => n.op === 'Identity' && n.inputs[0] === 'zero'), `${mode}: the Identity of an initializer is gone`);
    if (mode === 'acs' || mode === '2.5d') {
      assert.equal(shared.card.parameters.converted, shared.card.parameters.source2d, `${mode}: parameters`);
      assert.equal(copies.card.parameters.converted - shared.card.parameters.converted, 6 * 6 * 9 + 6, `${mode}: one copy of the shared weight and bias`);
    }
  }
});

test('aux heads: dropped by default, kept on request, refused when the option is not drop or keep', async () => {
  const { source } = await loadSource(fixture('goldens', 'segmentation', 'fcn.onnx'));
  const dropped = convert(source, { mode: 'acs' });
  const kept = convert(source, { mode: 'acs', aux: 'keep' });
  assert.deepEqual(dropped.graph.outputs.map((o) => o.name), ['out']);
  assert.deepEqual(kept.graph.outputs.map((o) => o.name), ['out', 'aux']);
  assert.ok(kept.card.parameters.converted > dropped.card.parameters.converted, 'the aux head has parameters');
  assert.equal(kept.card.parameters.converted, kept.card.parameters.source2d);
  const shape = [1, 3, 13, 11, 9];
  const input = detTensor(shape, 2);
  const a = await runGraph(dropped.graph, input, shape);
  const b = await runGraph(kept.graph, input, shape);
  assert.deepEqual(a.data, b.data, 'the main output does not depend on the option');
  assert.throws(() => convert(source, { mode: 'acs', aux: 'maybe' as 'keep' }), InvalidArgumentError);
  assert.notDeepEqual(canonicalOptions({ mode: 'acs' }), canonicalOptions({ mode: 'acs', aux: 'keep' }), 'the option is part of the cache key');
  assert.deepEqual(canonicalOptions({ mode: 'acs' }), canonicalOptions({ mode: 'acs', aux: 'drop' }), 'drop is the default');
});

/** conv -> Resize whose `sizes` are built by `sizes(b, y)` from the conv's output `y`. */
function resizeGraph(sizes: (b: GraphBuilder, y: string, x: string) => string, inputShape: (number | string)[] = ['N', 3, 'H', 'W']): Graph {
  const b = new GraphBuilder(SD, 'resize');
  const x = b.input('input', inputShape);
  const y = b.op('Conv', [x, b.weight('a.weight')], { kernel_shape: A.ints([3, 3]), strides: A.ints([2, 2]), pads: A.ints([1, 1, 1, 1]) });
  b.output(b.op('Resize', [y, '', '', sizes(b, y, x)], { mode: A.str('linear') }), 'output');
  return b.build();
}

function refused(g: Graph, pattern: RegExp): void {
  assert.throws(
    () => convert({ kind: 'onnx', graph: g }, { mode: 'acs' }),
    (err: unknown) => err instanceof AcsHubError && ['UNSUPPORTED', 'CONVERSION_FAILED', 'INVALID_ARGUMENT'].includes(err.code) && pattern.test(err.message),
  );
}

test('resize sizes that follow the input convert; swapped axes, fixed sizes in a free-size graph and runaway shape vectors are 422s', async () => {
  const shapeOf = (b: GraphBuilder, v: string, start: number, end: number) => b.op('Shape', [v], { start: A.int(start), end: A.int(end) });
  const ok = resizeGraph((b, y, x) => b.concat([shapeOf(b, y, 0, 2), shapeOf(b, x, 2, 4)], 0));
  const r = convert({ kind: 'onnx', graph: ok }, { mode: 'acs' });
  const y = await runGraph(r.graph, detTensor([1, 3, 7, 5, 9], 1), [1, 3, 7, 5, 9]);
  assert.deepEqual(y.dims, [1, 6, 7, 5, 9]);

  const swapped = resizeGraph((b, y, x) => b.concat([shapeOf(b, y, 0, 2), shapeOf(b, x, 3, 4), shapeOf(b, x, 2, 3)], 0));
  refused(swapped, /its output axis 2 \(H\) takes axis 3 of 'input' \(W\)/);

  const fixed = resizeGraph((b, y) => b.concat([shapeOf(b, y, 0, 2), b.ints('hw', [32, 32])], 0));
  refused(fixed, /fixed 2D size in a graph whose input size is free/);

  const staticNoMatch = resizeGraph((b, y) => b.concat([shapeOf(b, y, 0, 2), b.ints('hw', [30, 30])], 0), [1, 3, 32, 32]);
  refused(staticNoMatch, /neither the size of a tensor it is combined with nor the input's/);
  const staticInput = resizeGraph((b, y) => b.concat([shapeOf(b, y, 0, 2), b.ints('hw', [32, 40])], 0), [1, 3, 32, 40]);
  const s = convert({ kind: 'onnx', graph: staticInput }, { mode: 'acs' });
  assert.deepEqual((await runGraph(s.graph, detTensor([1, 3, 5, 7, 3], 1), [1, 3, 5, 7, 3])).dims, [1, 6, 5, 7, 3], 'a fixed size equal to the input follows the input');

  // 60 levels of Concat(v, v) -> Slice: 2^60 paths through 120 nodes.
  const ladder = resizeGraph((b, y, x) => {
    let v = shapeOf(b, x, 2, 4);
    for (let i = 0; i < 60; i++) v = b.op('Slice', [b.concat([v, v], 0), b.ints(`s${i}`, [0]), b.ints(`e${i}`, [2])]);
    return b.concat([shapeOf(b, y, 0, 2), v], 0);
  });
  refused(ladder, /sizes are computed in a way the converter does not follow/);
  const chain = resizeGraph((b, y, x) => {
    let v = shapeOf(b, x, 2, 4);
    for (let i = 0; i < 5000; i++) v = b.op('Identity', [v]);
    return b.concat([shapeOf(b, y, 0, 2), v], 0);
  });
  refused(chain, /sizes are computed in a way the converter does not follow/);
});

test('a static-shape export whose Reshape and Resize encode the 2D size runs at any volume size', async () => {
  const b = new GraphBuilder(SD, 'static');
  const x = b.input('input', [1, 3, 32, 40]);
  const y = b.op('Conv', [x, b.weight('a.weight')], { kernel_shape: A.ints([3, 3]), strides: A.ints([2, 2]), pads: A.ints([1, 1, 1, 1]) });
  const same = b.op('Reshape', [b.relu(y), b.ints('target', [1, 6, 16, 20])]);
  const sizes = b.concat([b.op('Shape', [same], { end: A.int(2) }), b.ints('hw', [32, 40])], 0);
  const up = b.op('Resize', [same, '', '', sizes], { mode: A.str('linear') });
  b.output(b.add(up, b.op('Conv', [x, b.weight('a.weight')], { kernel_shape: A.ints([3, 3]), pads: A.ints([1, 1, 1, 1]) })), 'output');
  const r = convert({ kind: 'onnx', graph: b.build() }, { mode: 'acs' });
  for (const shape of [[1, 3, 33, 47, 61], [1, 3, 9, 4, 7]]) {
    const out = await runGraph(r.graph, detTensor(shape, 5), shape);
    assert.deepEqual(out.dims, [1, 6, ...shape.slice(2)], `at ${shape.join('x')} (the batch stays as exported, the spatial axes are free)`);
  }
});
