/**
 * The specialised stem (converters/graph/specialize.ts): a strided ACS view followed by a max
 * pooling through the views' Concat is pooled while still folded (a 2D pooling on padded
 * output channels, then the folded axis), and its planes are kept after the fold; on request
 * its convolution reads the space-to-depth of its planes. Whatever the options, sizes (odd
 * ones too), pooling settings and channel splits, the specialised graph gives what the
 * general graph gives.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GraphBuilder } from '../../../converters/graph/builder.js';
import { attrInts, type Graph } from '../../../converters/graph/ir.js';
import { specializeViews, type SpecializeOptions } from '../../../converters/graph/specialize.js';
import { convertGraphTo3d } from '../../../converters/graph/to3d.js';
import type { StateDict } from '../../../converters/tensor.js';
import { detTensor } from '../../helpers.js';
import { assertMatchesGolden, runGraph } from '../goldens/goldens.js';

interface Stem {
  name: string;
  outChannels: number;
  pool: { k: number; s: number; p: number; ceil: boolean };
}

const STEMS: Stem[] = [
  { name: 'ResNet stem, 13 channels', outChannels: 13, pool: { k: 3, s: 2, p: 1, ceil: false } },
  { name: 'ResNet stem, 24 channels (whole blocks)', outChannels: 24, pool: { k: 3, s: 2, p: 1, ceil: false } },
  { name: 'ceil-mode pooling', outChannels: 10, pool: { k: 3, s: 2, p: 0, ceil: true } },
  { name: '2x2 pooling, no padding', outChannels: 7, pool: { k: 2, s: 2, p: 0, ceil: false } },
];

/** conv 7x7 stride 2 (+ bias) -> ReLU -> max pool -> conv 3x3, converted to ACS: the general 3D graph. */
function stemGraph(s: Stem): Graph {
  const sd: StateDict = new Map();
  sd.set('stem.weight', { dtype: 'F32', shape: [s.outChannels, 3, 7, 7], data: detTensor([s.outChannels, 3, 7, 7], 11, 0.2) });
  sd.set('stem.bias', { dtype: 'F32', shape: [s.outChannels], data: detTensor([s.outChannels], 12, 0.5) });
  sd.set('next.weight', { dtype: 'F32', shape: [6, s.outChannels, 3, 3], data: detTensor([6, s.outChannels, 3, 3], 13, 0.2) });
  const b = new GraphBuilder(sd, s.name);
  const x = b.relu(b.conv(b.input('input', ['N', 3, 'H', 'W']), 'stem', { stride: 2, pad: 3 }));
  const p = b.maxPool(x, s.pool.k, s.pool.s, s.pool.p, 'maxpool', s.pool.ceil);
  b.output(b.conv(p, 'next', { pad: 1 }), 'output');
  return convertGraphTo3d(b.build(), { mode: 'acs', axis: 0 }).graph;
}

/** The max poolings of a graph, by the rank of their kernel. */
function poolRanks(g: Graph): number[] {
  return g.nodes.filter((n) => n.op === 'MaxPool').map((n) => attrInts(n, 'kernel_shape', [])!.length);
}

const OPTIONS: { name: string; o: SpecializeOptions }[] = [
  { name: 'defaults', o: {} },
  { name: 'blocks of 16', o: { channelBlock: 16 } },
  { name: 'planes before the fold', o: { planes: 'before-fold' } },
  { name: 'planes after the fold', o: { planes: 'after-fold' } },
  { name: 'pooled after the fold back', o: { foldedPools: false } },
  { name: 'space-to-depth stem', o: { stem: 'space-to-depth' } },
];

const SIZES = [[16, 16, 16], [17, 19, 23], [12, 9, 20], [8, 8, 8]];

for (const s of STEMS) {
  test(`specialised stem (${s.name}) equals the general graph at every size and with every option`, async () => {
    const general = stemGraph(s);
    for (const size of SIZES) {
      const shape = [2, 3, ...size];
      const input = detTensor(shape, 21);
      const expected = await runGraph(general, input, shape);
      for (const { name, o } of OPTIONS) {
        const sp = specializeViews(general, { input: shape }, o);
        assert.equal(sp.views.axial + sp.views.coronal + sp.views.sagittal, 6, `${name}: both convolutions' views rewritten`);
        // the stem's axial and coronal folds gather their planes; the sagittal one (W) cannot
        const gathers = sp.graph.nodes.filter((n) => n.op === 'Gather' && n.name.startsWith('stem')).length;
        assert.equal(gathers, o.planes === undefined ? 2 : 0, `${name}: the stem's folds of D and H are Gathers by default`);
        const ranks = poolRanks(sp.graph);
        assert.equal(sp.views.pooled, o.foldedPools === false ? 0 : 3, `${name}: the stem's views pooled while folded`);
        if (o.foldedPools === false) assert.deepEqual(ranks, [3, 3, 3], `${name}: each part pooled in 3D after the fold back`);
        else assert.deepEqual(ranks.sort(), [2, 2, 2, 3, 3, 3], `${name}: each part pooled in its plane while folded, then across`);
        const got = await runGraph(sp.graph, input, shape);
        assertMatchesGolden(got, { data: expected.data, shape: expected.dims }, `${s.name} at ${size.join('x')}, ${name}`, 1e-5);
      }
    }
  });
}

test('specialised stem: padded output channels are whole blocks and are dropped again', () => {
  const general = stemGraph(STEMS[0]!);
  for (const block of [8, 16]) {
    const sp = specializeViews(general, { input: [1, 3, 16, 16, 16] }, { channelBlock: block });
    const stemConvs = sp.graph.nodes.filter((n) => n.op === 'Conv' && n.name.startsWith('stem'));
    assert.equal(stemConvs.length, 3);
    for (const c of stemConvs) {
      const w = sp.graph.initializers.get(c.inputs[1]!)!;
      const b = sp.graph.initializers.get(c.inputs[2]!)!;
      assert.equal(w.shape[0]! % block, 0, `${c.name}: ${w.shape[0]} output channels, a whole number of blocks of ${block}`);
      assert.equal(b.shape[0], w.shape[0]);
    }
    const channelSlices = sp.graph.nodes.filter((n) => n.op === 'Slice' && n.name.includes('channels'));
    assert.equal(channelSlices.length, 3, 'the padding channels are sliced off each part (13 = 5 + 4 + 4 channels)');
  }
});

test('specialised stem: a pooling whose Concat is read elsewhere too is left to the 3D path', async () => {
  const s = STEMS[0]!;
  const sd: StateDict = new Map();
  sd.set('stem.weight', { dtype: 'F32', shape: [9, 3, 7, 7], data: detTensor([9, 3, 7, 7], 11, 0.2) });
  const b = new GraphBuilder(sd, s.name);
  const x = b.relu(b.conv(b.input('input', ['N', 3, 'H', 'W']), 'stem', { stride: 2, pad: 3 }));
  b.output(b.maxPool(x, 3, 2, 1), 'pooled');
  b.output(x, 'features');
  const general = convertGraphTo3d(b.build(), { mode: 'acs', axis: 0 }).graph;
  const shape = [1, 3, 14, 10, 12];
  const sp = specializeViews(general, { input: shape });
  assert.deepEqual(poolRanks(sp.graph), [3], 'the Concat is a graph output: pooled once, after it');
  const input = detTensor(shape, 5);
  assertMatchesGolden(await runGraph(sp.graph, input, shape), await runGraph(general, input, shape).then((r) => ({ data: r.data, shape: r.dims })), 'two outputs', 1e-5);
});

/** A stride-2 convolution of `inChannels` channels, kernel k, padding p (then ReLU), converted to ACS. */
function stridedGraph(inChannels: number, k: number, p: number): Graph {
  const sd: StateDict = new Map();
  sd.set('stem.weight', { dtype: 'F32', shape: [11, inChannels, k, k], data: detTensor([11, inChannels, k, k], 31 + k + p, 0.2) });
  sd.set('stem.bias', { dtype: 'F32', shape: [11], data: detTensor([11], 32, 0.5) });
  const b = new GraphBuilder(sd, `k${k}p${p}`);
  b.output(b.relu(b.conv(b.input('input', ['N', inChannels, 'H', 'W']), 'stem', { stride: 2, pad: p })), 'output');
  return convertGraphTo3d(b.build(), { mode: 'acs', axis: 0 }).graph;
}

test('space-to-depth stem: every kernel size and padding (odd and even) gives the direct convolution; planes with an odd side keep it', async () => {
  const rewritten = new Set<string>();
  for (const inChannels of [1, 3])
    for (const k of [3, 4, 5, 7])
      for (let p = 0; p < k; p++) {
        const general = stridedGraph(inChannels, k, p);
        for (const size of [[16, 12, 20], [12, 9, 20], [10, 10, 10]]) {
          const shape = [2, inChannels, ...size];
          if (size.some((d) => d + 2 * p < k)) continue;
          const sp = specializeViews(general, { input: shape }, { stem: 'space-to-depth' });
          // (a padding under k/2 is converted with slices of the collapsed axis: not rewritten at all)
          const [d, h, w] = size as [number, number, number];
          const planes = { axial: [h, w], coronal: [d, w], sagittal: [d, h] };
          const even = (Object.keys(planes) as (keyof typeof planes)[]).filter((v) => sp.views[v] > 0 && planes[v].every((x) => x % 2 === 0)).length;
          const s2d = sp.graph.nodes.filter((n) => n.op === 'SpaceToDepth').length;
          if (s2d) rewritten.add(`k=${k} p=${p}`);
          assert.equal(s2d, even, `${inChannels} channels, k=${k} p=${p} at ${size.join('x')}: the views whose planes have even sides`);
          const input = detTensor(shape, 41);
          const expected = await runGraph(general, input, shape);
          assertMatchesGolden(await runGraph(sp.graph, input, shape), { data: expected.data, shape: expected.dims }, `${inChannels} channels, k=${k} p=${p} at ${size.join('x')}`, 1e-5);
        }
      }
  // ACS views are rewritten where the 2D padding is k/2 (the others are converted with slices of
  // the collapsed axis); those cover an odd padding (a zero tap put first) and an even one.
  assert.deepEqual([...rewritten].sort(), ['k=3 p=1', 'k=5 p=2', 'k=7 p=3']);
});

test('space-to-depth stem: the convolution reads 4x the channels with half the kernel, at stride 1; wide inputs keep the direct one', () => {
  const sp = specializeViews(stridedGraph(3, 7, 3), { input: [1, 3, 16, 16, 16] }, { stem: 'space-to-depth' });
  const convs = sp.graph.nodes.filter((n) => n.op === 'Conv');
  assert.equal(convs.length, 3);
  for (const c of convs) {
    assert.deepEqual(sp.graph.initializers.get(c.inputs[1]!)!.shape.slice(1), [12, 4, 4], c.name);
    assert.deepEqual(attrInts(c, 'strides', [1, 1]), [1, 1], c.name);
  }
  const wide = specializeViews(stridedGraph(8, 3, 1), { input: [1, 8, 16, 16, 16] }, { stem: 'space-to-depth' });
  assert.equal(wide.graph.nodes.filter((n) => n.op === 'SpaceToDepth').length, 0, '8 input channels: a whole block, left direct');
});
