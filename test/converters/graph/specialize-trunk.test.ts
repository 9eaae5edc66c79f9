/**
 * The residual trunk of a network whose 1x1x1 convolutions are specialised as 2D ones
 * (converters/graph/specialize.ts, `flatResiduals`): the Adds and ReLUs between them are done
 * on the 4D values [N, C, D, H*W], the reshapes between consecutive 1x1 convolutions are gone,
 * the 4D values carry the input's batch dimension in `value_info`, and onnxruntime fuses each
 * residual Add and its ReLU into the convolution before it. The outputs are the general graph's.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { convert } from '../../../converters/convert.js';
import { readCheckpointFile } from '../../../converters/formats/index.js';
import { decodeOnnx, encodeOnnx } from '../../../converters/formats/onnx.js';
import { graphFromModel, graphToModel, type Graph } from '../../../converters/graph/ir.js';
import { inferShapes } from '../../../converters/graph/shapes.js';
import { specializeViews } from '../../../converters/graph/specialize.js';
import { resnetStateDict } from '../../../bench/synthetic.js';
import { assertClose, detTensor, fixture } from '../../helpers.js';
import { runGraph } from '../goldens/goldens.js';

async function resnet50(): Promise<Graph> {
  const sd = (await readCheckpointFile(fixture('goldens', 'resnet50', 'model.pth'))).tensors;
  return convert({ kind: 'state-dict', tensors: sd }, { mode: 'acs', head: 4 }).graph;
}

/** The operators of the graph onnxruntime runs after its own optimisations (written by it to a file). */
async function optimised(g: Graph): Promise<{ op: string; domain: string; inputs: string[] }[]> {
  const dir = await mkdtemp(join(tmpdir(), 'acs-trunk-'));
  try {
    const path = join(dir, 'optimised.onnx');
    const session = await ort.InferenceSession.create(encodeOnnx(graphToModel(g)), { graphOptimizationLevel: 'all', optimizedModelFilePath: path, intraOpNumThreads: 1, logSeverityLevel: 3 });
    await session.release();
    const model = decodeOnnx(await readFile(path));
    return (model.graph?.node ?? []).map((n) => ({ op: n.opType ?? '', domain: n.domain ?? '', inputs: (n.input ?? []) as string[] }));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('pointwise specialisation: the residual trunk runs in 4D, equals the general graph, and onnxruntime fuses its Adds and ReLUs', async () => {
  const general = await resnet50();
  for (const shape of [[2, 3, 16, 16, 16], [1, 3, 12, 20, 9]]) {
    const input = detTensor(shape, 7);
    const expected = await runGraph(general, input, shape);
    const { graph, views } = specializeViews(general, { input: shape }, { pointwise: true });
    assert.ok(views.pointwise > 0, 'some 1x1x1 convolutions are 2D ones');
    assertClose((await runGraph(graph, input, shape)).data, expected.data, { rtol: 1e-5, atol: 1e-6, what: `${shape.join('x')}: specialised against general` });

    // Every residual Add adds two 4D values, and no convolution reads a reshape of a reshape
    // (a 1x1 convolution after an Add reads the Add's 4D value itself).
    const shapes = inferShapes(graph, { input: shape });
    const adds = graph.nodes.filter((n) => n.op === 'Add');
    assert.ok(adds.length >= 3, `${adds.length} Adds`);
    for (const a of adds) for (const x of a.inputs) assert.equal(shapes.get(x)?.shape.length, 4, `${a.name}: ${x} is 4D`);
    const producer = new Map(graph.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
    for (const conv of graph.nodes.filter((n) => n.op === 'Conv')) {
      const r = producer.get(conv.inputs[0]!);
      if (r?.op === 'Reshape') assert.notEqual(producer.get(r.inputs[0]!)?.op, 'Reshape', `${conv.name} reads a reshape of a reshape`);
    }
    const direct = graph.nodes.filter((n) => n.op === 'Conv' && ['Add', 'Relu'].includes(producer.get(n.inputs[0]!)?.op ?? ''));
    assert.ok(direct.length >= adds.length - 1, `${direct.length} convolutions read the trunk's 4D values directly`);

    // The 4D values keep the input's batch dimension, which shape inference would lose in the folds.
    const made = new Set(graph.nodes.flatMap((n) => n.outputs));
    assert.ok((graph.valueInfo ?? []).length >= 2 * adds.length, `${graph.valueInfo?.length} values described`);
    for (const v of graph.valueInfo ?? []) {
      assert.ok(made.has(v.name), `${v.name} is made by a node`);
      assert.equal(v.shape?.[0], 'N', `${v.name}: the batch dimension`);
      assert.deepEqual(v.shape?.slice(1), shapes.get(v.name)?.shape.slice(1), `${v.name}: the other dimensions`);
    }
  }

});

test('pointwise specialisation: onnxruntime fuses each residual Add whose two inputs are 2D values into the convolution before it', async () => {
  // Real widths (onnxruntime's blocked kernels need whole blocks of channels): a ResNet-50
  // with two blocks in its first stage, one in the others.
  const general = convert({ kind: 'state-dict', tensors: resnetStateDict([2, 1, 1, 1]) }, { mode: 'acs', head: 4 }).graph;
  const shape = [1, 3, 16, 16, 16];
  const { graph } = specializeViews(general, { input: shape }, { pointwise: true });
  const producer = new Map(graph.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
  const adds = graph.nodes.filter((n) => n.op === 'Add');
  // After a strided downsampling (a 3D convolution) one input is a reshape: that Add stays.
  const fusable = adds.filter((a) => a.inputs.every((x) => producer.get(x)?.op !== 'Reshape'));
  assert.deepEqual(fusable.map((a) => a.name), ['layer1.0.add_1/2d', 'layer1.1.add_1/2d']);
  const ops = await optimised(graph);
  const summed = ops.filter((n) => n.op === 'Conv' && n.domain === 'com.microsoft.nchwc' && n.inputs.length === 4 && n.inputs[3]);
  assert.equal(summed.length, fusable.length, `${summed.length} of ${fusable.length} Adds fused into a convolution`);
  assert.equal(ops.filter((n) => n.op === 'Add').length, adds.length - fusable.length, 'the other Adds stay');
  const input = detTensor(shape, 3);
  assertClose((await runGraph(graph, input, shape)).data, (await runGraph(general, input, shape)).data, { rtol: 1e-5, atol: 1e-6, what: 'specialised against general' });
  // Without the batch dimension in value_info, onnxruntime cannot tell the shapes are equal.
  const withoutShapes = await optimised({ ...graph, valueInfo: undefined });
  assert.equal(withoutShapes.filter((n) => n.op === 'Conv' && n.domain === 'com.microsoft.nchwc' && n.inputs.length === 4 && n.inputs[3]).length, 0, 'no Add fused without it');
});

test('pointwise specialisation: the model file keeps the 4D values\' shapes through encoding', async () => {
  const { graph } = specializeViews(await resnet50(), { input: [1, 3, 16, 16, 16] }, { pointwise: true });
  const model = decodeOnnx(encodeOnnx(graphToModel(graph)));
  const described = new Map((model.graph?.valueInfo ?? []).map((v) => [v.name, v.type?.tensorType?.shape?.dim?.map((d) => d.dimParam || Number(d.dimValue))]));
  assert.equal(described.size, graph.valueInfo?.length);
  for (const v of graph.valueInfo ?? []) assert.deepEqual(described.get(v.name), v.shape, v.name);
  // Read back, the graph runs as written (value_info is not part of the IR's round trip).
  assert.equal(graphFromModel(model).nodes.length, graph.nodes.length);
});
