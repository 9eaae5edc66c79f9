/**
 * Segmentation networks (converters/SPEC-acs.md section 18): small FCN, DeepLabV3 (ASPP with
 * image pooling), LR-ASPP and U-Nets, exported by torch.onnx.export (tools/goldens/make_seg_goldens.py),
 * converted in every mode and run by onnxruntime at volume sizes with no common factor, against
 * their independent 3D PyTorch reference: the output shape, its sum and abs sum, and 2048
 * elements spread over the whole volume, rtol 1e-4. One export has a fixed 2D size.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { convert, type Mode } from '../../../converters/convert.js';
import { loadSource } from '../../../converters/convert-file.js';
import { assertClose, detTensor, fixture } from '../../helpers.js';
import { loadOutputs, runGraph } from '../goldens/goldens.js';

interface SegCase {
  name: string;
  network: string;
  mode: Mode;
  input: { shape: number[]; seed: number };
  output_shape: number[];
  sum: number;
  abs_sum: number;
  params_2d: number;
}

const golden = JSON.parse(readFileSync(fixture('goldens', 'segmentation', 'cases.json'), 'utf8')) as { samples: number; stride: number; cases: SegCase[] };

/** The elements the goldens keep: flat indices (j * stride) mod numel. */
function sample(y: Float32Array, n: number, stride: number): Float32Array {
  const out = new Float32Array(n);
  for (let j = 0; j < n; j++) out[j] = y[Number((BigInt(j) * BigInt(stride)) % BigInt(y.length))]!;
  return out;
}

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
      assert.deepEqual(y.dims, c.output_shape, `${c.name}: output shape`);
      const expected = outputs.get(c.name)!.data as Float32Array;
      const scale = Math.max(...expected.map(Math.abs));
      assertClose(sample(y.data, golden.samples, golden.stride), expected, { rtol: 1e-4, atol: 1e-4 * scale, what: c.name });
      let sum = 0;
      let abs = 0;
      for (const v of y.data) {
        sum += v;
        abs += Math.abs(v);
      }
      assert.ok(Math.abs(abs - c.abs_sum) <= 1e-4 * c.abs_sum, `${c.name}: abs sum ${abs} vs ${c.abs_sum}`);
      assert.ok(Math.abs(sum - c.sum) <= 1e-4 * c.abs_sum, `${c.name}: sum ${sum} vs ${c.sum}`);
    }
  });
}
