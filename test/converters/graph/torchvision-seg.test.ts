/**
 * torchvision's own segmentation architectures, FCN-ResNet50, DeepLabV3-ResNet50,
 * DeepLabV3-MobileNetV3-Large and LR-ASPP-MobileNetV3-Large (random seeded weights, the 21
 * COCO-VOC classes of the published weights, FCN with its aux head), exported by torch.onnx.export at test time
 * (tools/goldens/torchvision_seg.py runs Debian's PyTorch, as model-py.test.ts does), converted
 * to ACS and run by onnxruntime at an odd size against their independent 3D PyTorch reference,
 * rtol 1e-4. MobileNet-based networks at 33x47x61, ResNet50-based ones at 17x19x23 (a 3D
 * ResNet50 with output stride 8 is slow in the reference on two cores). The same weights saved
 * as a `.pth` state dict convert through the architecture templates (no `--arch`) to the same
 * 3D network, checked against the same reference; so do networks fine-tuned to 3 classes (their
 * heads, and FCN's aux head, built for 3 classes).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { convert } from '../../../converters/convert.js';
import { loadSource } from '../../../converters/convert-file.js';
import { assertClose, tempDir } from '../../helpers.js';
import { runGraph } from '../goldens/goldens.js';
import { caseKey, networkFile, segReferences, type SegCase } from './seg-reference.js';

const PUBLISHED: SegCase[] = [
  { name: 'lraspp_mobilenet_v3_large', size: [33, 47, 61], mode: 'acs' },
  { name: 'deeplabv3_mobilenet_v3_large', size: [33, 47, 61], mode: 'acs' },
  { name: 'fcn_resnet50', size: [17, 19, 23], mode: 'acs' },
  { name: 'deeplabv3_resnet50', size: [17, 19, 23], mode: 'acs' },
];

/** Fine-tuned to 3 classes: a state dict only, as training leaves it. */
const FINE_TUNED: SegCase[] = [
  { name: 'deeplabv3_mobilenet_v3_large', id: 'deeplabv3_mobilenet_v3_large_3', classes: 3, onnx: false, size: [19, 23, 17], mode: 'acs' },
  { name: 'lraspp_mobilenet_v3_large', id: 'lraspp_mobilenet_v3_large_3', classes: 3, onnx: false, size: [19, 23, 17], mode: 'acs' },
  { name: 'fcn_resnet50', id: 'fcn_resnet50_3', classes: 3, aux: true, onnx: false, size: [17, 19, 23], mode: 'acs' },
];

test('torchvision segmentation architectures convert to ACS and match their 3D PyTorch reference at odd sizes', async (t) => {
  const dir = await tempDir(t);
  const refs = await segReferences(dir, [...PUBLISHED, ...FINE_TUNED]);
  const cases = [...PUBLISHED.flatMap((c) => [{ c, from: 'onnx' as const }, { c, from: 'pth' as const }]), ...FINE_TUNED.map((c) => ({ c, from: 'pth' as const }))];
  for (const { c, from } of cases) {
    const classes = c.classes ?? 21;
    await t.test(`${c.name}, ${classes} classes (${c.mode}) from .${from} at ${c.size.join('x')}`, async () => {
      const r = refs.get(caseKey(c))!;
      const { source } = await loadSource(networkFile(dir, c, from));
      const converted = convert(source, { mode: c.mode });
      if (from === 'pth') assert.equal(converted.card.architecture.arch, c.name, 'recognised by its template');
      assert.equal(converted.graph.outputs.length, 1, 'one output: the aux head is dropped');
      assert.equal(converted.card.parameters.converted, r.params_2d, 'parameters of the 3D network equal the 2D network\'s (aux head dropped)');
      assert.equal(converted.card.output.size, classes, 'classes of the output');
      const y = await runGraph(converted.graph, r.input, [1, 3, ...c.size]);
      assert.deepEqual(y.dims, r.shape, 'output shape');
      assertClose(y.data, r.expected, { rtol: 1e-4, atol: 1e-4 * Math.max(r.max_abs, 1e-3), what: c.name });
    });
  }
});
