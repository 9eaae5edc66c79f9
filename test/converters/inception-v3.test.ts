/**
 * Inception-v3 end to end: torchvision's network (random seeded weights, no auxiliary head),
 * exported to ONNX by PyTorch at test time (Debian's python3-torch, tools/goldens/inception_v3_acs.py),
 * converted to ACS with its 1x7, 7x1, 1x3 and 3x1 convolutions (converters/SPEC-acs.md section 15)
 * and run by onnxruntime at the smallest size it takes, against the plain-torch ACS reading of
 * the same network.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { convert } from '../../converters/convert.js';
import { loadSource } from '../../converters/convert-file.js';
import { countTrainable } from '../../converters/tensor.js';
import { ROOT, tempDir } from '../helpers.js';
import { PYTHON } from '../python.js';
import { assertMatchesGolden, runGraph } from './goldens/goldens.js';

const exec = promisify(execFile);
const SCRIPT = join(ROOT, 'tools', 'goldens', 'inception_v3_acs.py');
/** The smallest input Inception-v3 takes is 75; sides that share no factor. */
const SIZE = [75, 76, 77];

test('Inception-v3 (torchvision, exported to ONNX) converts to ACS and matches PyTorch at 75x76x77 (rtol 1e-4)', async (t) => {
  const dir = await tempDir(t);
  await exec(PYTHON, [SCRIPT, dir, ...SIZE.map(String)], { timeout: 300_000 }).catch((err: Error & { stderr?: string }) => {
    assert.fail(`${PYTHON} ${SCRIPT} failed (PyTorch is needed: apt-get install python3-torch): ${err.message}\n${err.stderr ?? ''}`);
  });
  const want = JSON.parse(await readFile(join(dir, 'expected.json'), 'utf8')) as { shape: number[]; param_count_2d: number; param_count_acs: number };
  const { source } = await loadSource(join(dir, 'model.onnx'));
  const result = convert(source, { mode: 'acs', inputSize: SIZE as [number, number, number] });
  const nonSquare = result.graph2d.nodes.filter((n) => {
    const k = n.attrs['kernel_shape'];
    return n.op === 'Conv' && k?.type === 'ints' && k.value[0] !== k.value[1];
  });
  assert.ok(nonSquare.length >= 20, `the export has Inception's non-square convolutions (${nonSquare.length})`);
  const input = new Float32Array((await readFile(join(dir, 'input.f32'))).buffer.slice(0));
  const expected = new Float32Array((await readFile(join(dir, 'expected.f32'))).buffer.slice(0));
  const shape = [1, 3, ...SIZE];
  assertMatchesGolden(await runGraph(result.graph, input, shape), { data: expected, shape: want.shape }, 'inception_v3/acs');
  // The export folds each BatchNorm into its conv (a bias of O instead of BN's 2·O parameters).
  assert.equal(countTrainable(result.stateDict), result.card.parameters.source2d, 'the ACS checkpoint has the parameter count of the 2D export');
  assert.equal(want.param_count_acs, want.param_count_2d, 'the PyTorch ACS network has the 2D parameter count');
});
