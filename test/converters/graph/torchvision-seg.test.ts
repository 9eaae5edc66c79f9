/**
 * torchvision's own segmentation architectures, FCN-ResNet50, DeepLabV3-ResNet50,
 * DeepLabV3-MobileNetV3-Large and LR-ASPP-MobileNetV3-Large (random seeded weights, the 21
 * COCO-VOC classes of the published weights, FCN with its aux head), exported by torch.onnx.export at test time
 * (tools/goldens/torchvision_seg.py runs Debian's PyTorch, as model-py.test.ts does), converted
 * to ACS and run by onnxruntime at an odd size against their independent 3D PyTorch reference,
 * rtol 1e-4. MobileNet-based networks at 33x47x61, ResNet50-based ones at 17x19x23 (a 3D
 * ResNet50 with output stride 8 is slow in the reference on two cores). The same weights saved
 * as a `.pth` state dict convert through the architecture templates (no `--arch`) to the same
 * 3D network, checked against the same reference.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { convert } from '../../../converters/convert.js';
import { loadSource } from '../../../converters/convert-file.js';
import { assertClose, ROOT, tempDir } from '../../helpers.js';
import { PYTHON } from '../../python.js';
import { runGraph } from '../goldens/goldens.js';

const exec = promisify(execFile);

const CASES = [
  { name: 'lraspp_mobilenet_v3_large', size: [33, 47, 61], mode: 'acs' },
  { name: 'deeplabv3_mobilenet_v3_large', size: [33, 47, 61], mode: 'acs' },
  { name: 'fcn_resnet50', size: [17, 19, 23], mode: 'acs' },
  { name: 'deeplabv3_resnet50', size: [17, 19, 23], mode: 'acs' },
] as const;

test('torchvision segmentation architectures convert to ACS and match their 3D PyTorch reference at odd sizes', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'job.json'), JSON.stringify({ dir, cases: CASES }));
  await exec(PYTHON, [join(ROOT, 'tools', 'goldens', 'torchvision_seg.py'), join(dir, 'job.json')], { timeout: 300_000 }).catch((err: Error & { stderr?: string }) => {
    assert.fail(`${PYTHON} tools/goldens/torchvision_seg.py failed (PyTorch is needed: apt-get install python3-torch): ${err.message}\n${err.stderr ?? ''}`);
  });
  const results = JSON.parse(await readFile(join(dir, 'results.json'), 'utf8')) as Record<string, { shape: number[]; params_2d: number; max_abs: number }>;
  for (const c of CASES) for (const from of ['onnx', 'pth'] as const) {
    await t.test(`${c.name} (${c.mode}) from .${from} at ${c.size.join('x')}`, async () => {
      const r = results[`${c.name}.${c.mode}`]!;
      const { source } = await loadSource(join(dir, `${c.name}.${from}`));
      const converted = convert(source, { mode: c.mode });
      assert.equal(converted.graph.outputs.length, 1, 'one output: the aux head is dropped');
      assert.equal(converted.card.parameters.converted, r.params_2d, 'parameters of the 3D network equal the 2D network\'s (aux head dropped)');
      const shape = [1, 3, ...c.size];
      const input = new Float32Array((await readFile(join(dir, `${c.name}.${c.mode}.input.f32`))).buffer.slice(0));
      const expected = new Float32Array((await readFile(join(dir, `${c.name}.${c.mode}.expected.f32`))).buffer.slice(0));
      const y = await runGraph(converted.graph, input, shape);
      assert.deepEqual(y.dims, r.shape, 'output shape');
      assertClose(y.data, expected, { rtol: 1e-4, atol: 1e-4 * Math.max(r.max_abs, 1e-3), what: c.name });
    });
  }
});
