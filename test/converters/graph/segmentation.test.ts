/**
 * Segmentation networks (converters/SPEC-acs.md section 18): small FCN, DeepLabV3 (ASPP with
 * image pooling), LR-ASPP and U-Nets, exported by torch.onnx.export (tools/goldens/make_seg_goldens.py),
 * converted in every mode and run by onnxruntime at volume sizes with no common factor, against
 * their independent 3D PyTorch reference: the output shape, its sum and abs sum, and 2048
 * elements spread over the whole volume, rtol 1e-4. One export has a fixed 2D size.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { convert, type Mode } from '../../../converters/convert.js';
import { loadSource } from '../../../converters/convert-file.js';
import { detTensor, fixture } from '../../helpers.js';
import { assertMatchesSegGolden, loadOutputs, loadSegGoldens, runGraph } from '../goldens/goldens.js';

const golden = loadSegGoldens();

for (const network of [...new Set(golden.cases.map((c) => c.network))]) {
  test(`segmentation: ${network} matches its 3D PyTorch reference at sizes with no common factor`, async () => {
    const outputs = await loadOutputs('segmentation');
    const { source } = await loadSource(fixture('goldens', 'segmentation', `${network}.onnx`));
    const converted = new Map<Mode, ReturnType<typeof convert>>();
    for (const c of golden.cases.filter((x) => x.network === network)) {
      let r = converted.get(c.mode);
      if (!r) {
        r = convert(source, { mode: c.mode });
        converted.set(c.mode, r);
        assert.deepEqual(r.graph.outputs.map((o) => o.name), ['out'], `${c.name}: the aux head is dropped by default`);
        if (c.mode === 'acs' || c.mode === '2.5d') {
          assert.equal(r.card.parameters.converted, c.params_2d, `${c.name}: parameters of the 3D network`);
          assert.equal(r.card.parameters.source2d, c.params_2d, `${c.name}: parameters of the 2D network`);
        }
      }
      const y = await runGraph(r.graph, detTensor(c.input.shape, c.input.seed), c.input.shape);
      assertMatchesSegGolden(y, c, outputs.get(c.name)!.data as Float32Array, golden);
    }
  });
}
