import assert from 'node:assert/strict';
import { test } from 'node:test';
import { recognise } from '../../../converters/arch/index.js';
import { convert } from '../../../converters/convert.js';
import { countTrainable } from '../../../converters/tensor.js';
import { detTensor } from '../../helpers.js';
import { assertMatchesGolden, runGraph } from '../goldens/goldens.js';
import { TEMPLATE_CASES, templateEntry as entry, templateOutputs, templateWeights } from './template-weights.js';

/** The networks whose 3D conversion waits for other operators (non-square kernels, Resize to a size): the filled 2D graph. */
const SELECT = (c: { input3d?: number[] }): boolean => c.input3d === undefined;
const OUTPUTS = await templateOutputs();

for (const [name, c] of Object.entries(TEMPLATE_CASES).filter(([, c]) => SELECT(c))) {
  test(`${name}: the filled template equals torchvision in 2D${c.input3d ? ', and its ACS conversion equals the PyTorch reference in 3D' : ''} (rtol 1e-4)`, async () => {
    const e = entry(name);
    const sd = templateWeights(e);
    const r = recognise(sd);
    assert.equal(r.detected.arch, name);
    const built = r.builder.build(r.sd, r.detected, { features: false });
    const x2 = detTensor(c.input2d, c.seed);
    assertMatchesGolden(await runGraph(built.graph, x2, c.input2d), { data: OUTPUTS.get(`${name}/2d`)!.data as Float32Array, shape: c.output2d }, `${name} 2D`);
    if (!c.input3d) return;
    const result = convert({ kind: 'state-dict', tensors: sd }, { mode: 'acs' });
    assert.equal(result.card.architecture.arch, name);
    assert.equal(result.card.parameters.converted, countTrainable(sd), `${name}: ACS keeps the 2D parameter count`);
    assertMatchesGolden(await runGraph(result.graph, detTensor(c.input3d, c.seed), c.input3d), { data: OUTPUTS.get(`${name}/3d`)!.data as Float32Array, shape: c.output3d! }, `${name} 3D`);
  });
}

