/**
 * The public PyTorch U-Net ("Pytorch-UNet": DoubleConv blocks, four max-pool levels, widths 64 to
 * 1024, ConvTranspose 2x2/2 up-convolutions whose output is padded to its skip connection's size
 * by F.pad, tools/goldens/pytorch_unet.py) at full size with seeded weights, converted and run by
 * onnxruntime at volume sizes whose sides share no factor and that no stride divides, against its
 * independent 3D PyTorch reference (tools/goldens/torchvision_seg.py), rtol 1e-4:
 * - exported by torch.onnx.export with dynamic H, W: the pads follow the volume at run time
 *   (Shape, Gather, Sub, Div, Concat, Pad; converters/SPEC-acs.md section 18.1), in every mode;
 * - its `.pth` without --arch (ACS): recognised by the `unet` architecture template and filled by
 *   name, also when fine-tuned to 1 input channel and 4 classes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { convert, type ConvertResult } from '../../../converters/convert.js';
import { loadSource } from '../../../converters/convert-file.js';
import { assertClose, tempDir } from '../../helpers.js';
import { runGraph } from '../goldens/goldens.js';
import { caseKey, networkFile, segReferences, type SegCase } from './seg-reference.js';

const PUBLIC: SegCase[] = [
  { name: 'unet', size: [17, 19, 23], mode: 'acs' },
  { name: 'unet', size: [33, 35, 37], mode: 'acs' },
  ...(['2.5d', 'i3d', 'mean-acs', 'soft-acs'] as const).map((mode): SegCase => ({ name: 'unet', size: [17, 19, 23], mode })),
];
const FINE_TUNED: SegCase[] = [
  { name: 'unet', id: 'unet_1ch_4cls', in_channels: 1, classes: 4, onnx: false, size: [23, 17, 19], mode: 'acs' },
  { name: 'unet', id: 'unet_1ch_4cls', in_channels: 1, classes: 4, onnx: false, size: [35, 37, 33], mode: 'acs' },
];

test('the public PyTorch U-Net with transposed convolutions converts from ONNX and from .pth and matches its 3D PyTorch reference at sizes with no common factor', async (t) => {
  const dir = await tempDir(t);
  const refs = await segReferences(dir, [...PUBLIC, ...FINE_TUNED]);
  const groups = new Map<string, SegCase[]>();
  for (const c of PUBLIC) groups.set(`onnx:${c.mode}`, [...(groups.get(`onnx:${c.mode}`) ?? []), c]);
  groups.set('pth:acs', PUBLIC.filter((c) => c.mode === 'acs'));
  groups.set('pth:acs:1ch', FINE_TUNED);
  for (const [group, cases] of groups) {
    const from = group.startsWith('onnx') ? 'onnx' : 'pth';
    const first = cases[0]!;
    let converted: ConvertResult | undefined;
    for (const c of cases) {
      const channels = c.in_channels ?? 3;
      const classes = c.classes ?? 2;
      await t.test(`${channels} input channel${channels === 1 ? '' : 's'}, ${classes} classes (${c.mode}) from .${from} at ${c.size.join('x')}`, async () => {
        const r = refs.get(caseKey(c))!;
        if (!converted) {
          converted = convert((await loadSource(networkFile(dir, first, from))).source, { mode: first.mode });
          if (from === 'pth') assert.deepEqual([converted.card.architecture.family, converted.card.architecture.arch], ['unet', 'unet'], 'recognised by the unet template');
          assert.equal(converted.card.input.channels, channels, 'input channels');
          assert.equal(converted.card.output.size, classes, 'classes');
          if (c.mode === 'acs' || c.mode === '2.5d') assert.equal(converted.card.parameters.converted, r.params_2d, "parameters of the 3D network equal the 2D network's");
        }
        const y = await runGraph(converted.graph, r.input, [1, channels, ...c.size]);
        assert.deepEqual(y.dims, r.shape, 'output shape');
        assertClose(y.data, r.expected, { rtol: 1e-4, atol: 1e-4 * Math.max(r.max_abs, 1e-3), what: caseKey(c) });
      });
    }
  }
});
