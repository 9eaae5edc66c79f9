import assert from 'node:assert/strict';
import { test } from 'node:test';
import { recognise } from '../../../converters/arch/index.js';
import { convert, type ConvertSource, type Mode } from '../../../converters/convert.js';
import { readCheckpointFile } from '../../../converters/formats/index.js';
import { readOnnxFile } from '../../../converters/formats/onnx.js';
import { graphFromModel } from '../../../converters/graph/ir.js';
import { countTrainable, type StateDict } from '../../../converters/tensor.js';
import { detTensor, fixture, tensorSha256 } from '../../helpers.js';
import { specializeViews } from '../../../converters/graph/specialize.js';
import { assertMatchesGolden, FAMILIES, loadFamily, loadOutputs, runGraph, type Family, type TensorDesc } from './goldens.js';

/** The expected converted state dict of a case: the 2D description with the case's delta applied. */
function expectedStateDict(f: Family, name: string): [string, TensorDesc][] {
  const base = f.state_dicts['2d'] as Record<string, TensorDesc>;
  const delta = f.state_dicts[name] as { drop?: string[]; set?: Record<string, TensorDesc> };
  const drop = new Set(delta.drop ?? []);
  const out: [string, TensorDesc][] = Object.entries(base).filter(([k]) => !drop.has(k));
  for (const [k, d] of Object.entries(delta.set ?? {})) {
    const i = out.findIndex(([key]) => key === k);
    if (i >= 0) out[i] = [k, { ...out[i]![1], ...d }];
    else {
      const after = out.findIndex(([key]) => key === d.after);
      out.splice(after + 1, 0, [k, d]);
    }
  }
  return out;
}

function assertStateDict(actual: StateDict, expected: [string, TensorDesc][], what: string): void {
  assert.deepEqual([...actual.keys()], expected.map(([k]) => k), `${what}: keys and their order`);
  for (const [k, e] of expected) {
    const t = actual.get(k)!;
    assert.deepEqual(t.shape, e.shape, `${what}: ${k} shape`);
    if (e.dtype) assert.equal(t.dtype, e.dtype, `${what}: ${k} dtype`);
    if (e.exact === false) {
      const v = t.data as Float32Array;
      let sum = 0;
      for (const x of v) sum += x;
      assert.ok(Math.abs(sum - e.sum!) <= 1e-5 * Math.max(1, Math.abs(e.sum!)) * Math.sqrt(v.length), `${what}: ${k} sum ${sum} vs ${e.sum}`);
      e.first!.forEach((x, i) => assert.ok(Math.abs(v[i]! - x) <= 1e-6 * Math.max(1, Math.abs(x)), `${what}: ${k}[${i}]`));
    } else if (e.sha256) {
      assert.equal(tensorSha256(t), e.sha256, `${what}: ${k} bytes`);
    }
  }
}

for (const name of FAMILIES) {
  test(`goldens: ${name} in every mode matches PyTorch (rtol 1e-4)`, async (t) => {
    const f = loadFamily(name);
    const outputs = await loadOutputs(name);
    const fromOnnx = f.source.endsWith('.onnx');
    let rewritten = 0;
    let source: ConvertSource;
    if (fromOnnx) {
      const path = fixture('goldens', name, f.source);
      const { model, loadExternal } = await readOnnxFile(path);
      source = { kind: 'onnx', graph: graphFromModel(model, { file: path, loadExternal }) };
    } else {
      source = { kind: 'state-dict', tensors: (await readCheckpointFile(fixture('goldens', name, f.files['pth'] ?? 'model.pth'))).tensors };
    }
    for (const c of f.cases) {
      await t.test(c.name, async () => {
        const input = detTensor(c.input.shape, c.input.seed);
        const expected = { data: outputs.get(c.name)!.data as Float32Array, shape: c.output_shape };
        if (c.mode === '2d') {
          if (fromOnnx) {
            assertMatchesGolden(await runGraph(fixture('goldens', name, f.source), input, c.input.shape), expected, `${name}/2d (the export itself)`);
            return;
          }
          const r = recognise((source as { tensors: StateDict }).tensors);
          const built = r.builder.build(r.sd, r.detected, { features: false, inputSize: [c.input.shape[2]!, c.input.shape[3]!] });
          assertMatchesGolden(await runGraph(built.graph, input, c.input.shape), expected, `${name}/2d (builder ${r.detected.arch})`);
          return;
        }
        const result = convert(source, { mode: c.mode as Mode, axis: c.options.axis, inChannels: c.options.inChannels, head: c.options.head ?? 'keep' });
        assertMatchesGolden(await runGraph(result.graph, input, c.input.shape), expected, `${name}/${c.name}`);
        // What the inference engine runs: the same graph specialised for this input's size.
        const sp = specializeViews(result.graph, { [result.graph.inputs[0]!.name]: c.input.shape });
        rewritten += sp.views.axial + sp.views.coronal + sp.views.sagittal;
        assertMatchesGolden(await runGraph(sp.graph, input, c.input.shape), expected, `${name}/${c.name} (specialised)`);
        // The autotune's pointwise candidate: 1x1x1 convolutions as 2D ones, the residual trunk in 4D.
        const pw = specializeViews(result.graph, { [result.graph.inputs[0]!.name]: c.input.shape }, { pointwise: true });
        assertMatchesGolden(await runGraph(pw.graph, input, c.input.shape), expected, `${name}/${c.name} (specialised, 1x1x1 as 2D)`);
        if (!fromOnnx) {
          assertStateDict(result.stateDict, expectedStateDict(f, c.name), `${name}/${c.name}`);
          assert.equal(countTrainable(result.stateDict), c.param_count, `${name}/${c.name}: parameter count`);
        }
      });
    }
    assert.ok(rewritten > 0, `${name}: the specialised graphs rewrote some views`);
  });
}

test('goldens: timm ConvNeXt keys and DenseNet legacy keys give the same networks', async () => {
  const outputs = await loadOutputs('convnext_tiny');
  const timm = (await readCheckpointFile(fixture('goldens', 'convnext_tiny', 'model_timm.safetensors'))).tensors;
  const f = loadFamily('convnext_tiny');
  for (const c of f.cases.filter((x) => ['acs', 'i3d-d', 'acs-features'].includes(x.name))) {
    const r = convert({ kind: 'state-dict', tensors: timm }, { mode: c.mode as Mode, axis: c.options.axis, head: c.options.head ?? 'keep' });
    assert.equal(r.card.architecture.layout, 'timm');
    assertMatchesGolden(await runGraph(r.graph, detTensor(c.input.shape, c.input.seed), c.input.shape), { data: outputs.get(c.name)!.data as Float32Array, shape: c.output_shape }, `timm/${c.name}`);
  }
  const dn = loadFamily('densenet121');
  const dnOut = await loadOutputs('densenet121');
  const legacy = (await readCheckpointFile(fixture('goldens', 'densenet121', 'model_legacy_keys.pth'))).tensors;
  assert.ok([...legacy.keys()].some((k) => k.includes('norm.1')));
  const c = dn.cases.find((x) => x.name === 'acs')!;
  const r = convert({ kind: 'state-dict', tensors: legacy }, { mode: 'acs' });
  assert.ok([...r.stateDict.keys()].every((k) => !k.includes('norm.1')), 'converted checkpoints use the current key names');
  assertMatchesGolden(await runGraph(r.graph, detTensor(c.input.shape, c.input.seed), c.input.shape), { data: dnOut.get('acs')!.data as Float32Array, shape: c.output_shape }, 'densenet legacy keys');
});
