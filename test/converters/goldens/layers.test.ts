import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { GraphBuilder } from '../../../converters/graph/builder.js';
import { specializeViews, type SpecializeOptions } from '../../../converters/graph/specialize.js';
import { convertGraphTo3d } from '../../../converters/graph/to3d.js';
import type { StateDict } from '../../../converters/tensor.js';
import { detTensor, fixture } from '../../helpers.js';
import { assertMatchesGolden, loadOutputs, runGraph } from './goldens.js';

interface LayerCase {
  name: string;
  mode: 'acs' | '2.5d' | 'i3d' | 'mean-acs' | 'soft-acs';
  options: { axis?: 'd' | 'h' | 'w'; split?: [number, number, number] };
  in_channels: number;
  out_channels: number;
  kernel: number;
  stride: number;
  padding: number;
  dilation: number;
  groups: number;
  input: { shape: number[]; seed: number };
  weight: { shape: number[]; seed: number; scale: number };
  bias_init: { shape: number[]; seed: number; scale: number } | null;
  output_shape: number[];
}

const file = JSON.parse(readFileSync(fixture('goldens', 'layers', 'cases.json'), 'utf8')) as {
  cases: LayerCase[];
  det_tensor_examples: { shape: number[]; seed: number; scale: number; values: unknown }[];
};

test('det_tensor reproduces the goldens\' generator exactly', () => {
  for (const ex of file.det_tensor_examples) {
    assert.deepEqual([...detTensor(ex.shape, ex.seed, ex.scale)], (ex.values as number[]).flat(8), `seed ${ex.seed}`);
  }
});

const LOWERINGS = [
  { name: 'conv3d', lowering: 'conv3d' },
  { name: 'fold2d', lowering: 'fold2d' },
  { name: 'conv3d, specialised for the input shape', lowering: 'conv3d', specialize: {} },
  { name: 'conv3d, specialised: stride-1 views only, 1x1x1 too', lowering: 'conv3d', specialize: { strided: false, pointwise: true } },
] as const satisfies readonly { name: string; lowering: 'conv3d' | 'fold2d'; specialize?: SpecializeOptions }[];

for (const l of LOWERINGS) test(`per-layer goldens (${l.name}): ${file.cases.length} single convolutions match PyTorch (rtol 1e-4)`, async (t) => {
  let rewritten = 0;
  const outputs = await loadOutputs('layers');
  const AXES = { d: 0, h: 1, w: 2 } as const;
  for (const c of file.cases) await t.test(c.name, async () => {
    const sd: StateDict = new Map();
    sd.set('conv.weight', { dtype: 'F32', shape: c.weight.shape, data: detTensor(c.weight.shape, c.weight.seed, c.weight.scale) });
    if (c.bias_init) sd.set('conv.bias', { dtype: 'F32', shape: c.bias_init.shape, data: detTensor(c.bias_init.shape, c.bias_init.seed, c.bias_init.scale) });
    const b = new GraphBuilder(sd, c.name);
    b.output(b.conv(b.input('input', ['N', c.in_channels, 'H', 'W']), 'conv', { stride: c.stride, pad: c.padding, dilation: c.dilation, group: c.groups }), 'output');
    const { graph } = convertGraphTo3d(b.build(), {
      mode: c.mode,
      axis: AXES[c.options.axis ?? 'd'],
      splits: c.options.split ? new Map([['conv.weight', c.options.split]]) : undefined,
      lowering: l.lowering,
    });
    let run = graph;
    if ('specialize' in l) {
      const sp = specializeViews(graph, { input: c.input.shape }, l.specialize);
      rewritten += sp.views.axial + sp.views.coronal + sp.views.sagittal + sp.views.pointwise;
      run = sp.graph;
    }
    const out = await runGraph(run, detTensor(c.input.shape, c.input.seed), c.input.shape);
    const expected = outputs.get(c.name)!;
    assertMatchesGolden(out, { data: expected.data as Float32Array, shape: c.output_shape }, c.name, 1e-4);
  });
  if ('specialize' in l) assert.ok(rewritten > file.cases.length / 2, `${rewritten} convolutions rewritten over ${file.cases.length} cases`);
});
