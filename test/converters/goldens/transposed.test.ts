import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { convert, type Mode } from '../../../converters/convert.js';
import { readOnnxFile } from '../../../converters/formats/onnx.js';
import { graphFromModel } from '../../../converters/graph/ir.js';
import { specializeViews } from '../../../converters/graph/specialize.js';
import { countTrainable, type StateDict } from '../../../converters/tensor.js';
import { detTensor, fixture, tensorSha256 } from '../../helpers.js';
import { assertMatchesGolden, loadOutputs, runGraph, type GoldenInput, type TensorDesc } from './goldens.js';

interface Case {
  name: string;
  mode?: Mode;
  axis?: 'd' | 'h' | 'w';
  input: GoldenInput;
  output_shape: number[];
  param_count?: number;
  state_dict?: Record<string, TensorDesc>;
}

type Nets = Record<string, { source: string; param_count_2d: number; cases: Case[] }>;

const DIR = ['goldens', 'transposed'];

/** Every tensor as described (any order: an ONNX export orders its initializers its own way). */
function assertStateDict(actual: StateDict, expected: Record<string, TensorDesc>, what: string): void {
  assert.deepEqual([...actual.keys()].sort(), Object.keys(expected).sort(), `${what}: keys`);
  for (const [k, e] of Object.entries(expected)) {
    const t = actual.get(k)!;
    assert.deepEqual(t.shape, e.shape, `${what}: ${k} shape`);
    if (e.exact === false) {
      const v = t.data as Float32Array;
      let sum = 0;
      for (const x of v) sum += x;
      assert.ok(Math.abs(sum - e.sum!) <= 1e-5 * Math.max(1, Math.abs(e.sum!)) * Math.sqrt(v.length), `${what}: ${k} sum ${sum} vs ${e.sum}`);
      e.first!.forEach((x, i) => assert.ok(Math.abs(v[i]! - x) <= 1e-6 * Math.max(1, Math.abs(x)), `${what}: ${k}[${i}]`));
    } else {
      assert.equal(tensorSha256(t), e.sha256, `${what}: ${k} bytes`);
    }
  }
}

const nets = JSON.parse(readFileSync(fixture(...DIR, 'golden.json'), 'utf8')) as Nets;

for (const [name, net] of Object.entries(nets)) {
  test(`goldens: transposed and non-square convs, ${name} in every mode matches PyTorch (rtol 1e-4)`, async (t) => {
    const outputs = await loadOutputs('transposed');
    const path = fixture(...DIR, net.source);
    const { model, loadExternal } = await readOnnxFile(path);
    const graph = graphFromModel(model, { file: path, loadExternal });
    for (const c of net.cases) {
      await t.test(c.name, async () => {
        const input = detTensor(c.input.shape, c.input.seed);
        const expected = { data: outputs.get(`${name}/${c.name}`)!.data as Float32Array, shape: c.output_shape };
        if (c.name === '2d') {
          assertMatchesGolden(await runGraph(path, input, c.input.shape), expected, `${name}/2d (the export itself)`);
          return;
        }
        const result = convert({ kind: 'onnx', graph }, { mode: c.mode!, axis: c.axis });
        assertMatchesGolden(await runGraph(result.graph, input, c.input.shape), expected, `${name}/${c.name}`);
        if (c.mode === 'acs') {
          // Views as 2D convolutions over the folded collapsed axis: the kernels' two extents as they are.
          const folded = convert({ kind: 'onnx', graph }, { mode: 'acs', lowering: 'fold2d' });
          assertMatchesGolden(await runGraph(folded.graph, input, c.input.shape), expected, `${name}/${c.name} (fold2d)`);
        }
        // What the engine runs: transposed views as 2D ConvTransposes over the folded planes.
        const sp = specializeViews(result.graph, { [result.graph.inputs[0]!.name]: c.input.shape });
        if (c.mode !== 'i3d') assert.ok(sp.views.transposed > 0, `${name}/${c.name}: transposed views rewritten`);
        else assert.equal(sp.views.transposed, 0, `${name}/${c.name}: a full 3D kernel stays as it is`);
        assertMatchesGolden(await runGraph(sp.graph, input, c.input.shape), expected, `${name}/${c.name} (specialised)`);
        assertStateDict(result.stateDict, c.state_dict!, `${name}/${c.name}`);
        assert.equal(countTrainable(result.stateDict), c.param_count, `${name}/${c.name}: parameter count`);
        if (c.mode === 'acs' || c.mode === '2.5d' || c.mode === 'mean-acs') assert.equal(c.param_count, net.param_count_2d, `${name}/${c.name}: the 2D count`);
        assert.equal(result.card.parameters.source2d, net.param_count_2d);
      });
    }
  });
}
