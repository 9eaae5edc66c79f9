/**
 * model.py of the catalogue's torchvision models, one architecture at a time: each is built by
 * torchvision as its published weights build it, with seeded weights
 * (tools/model_py/catalogue_weights.py, Debian's PyTorch), saved as the `.pth` a zoo user
 * downloads, recognised without `--arch`, converted to ACS, and its generated model.py is run
 * by tools/model_py/check_model_py.py: model.safetensors loaded by safetensors' load_file with
 * strict=True, the same output as onnxruntime on the converted graph (rtol 1e-4) at the
 * smallest size of pairwise coprime sides it runs at, the parameter count, and a train-mode
 * forward and backward that reaches every parameter.
 *
 * The architectures come from zoo/catalogue.json itself, so a new entry is covered by this test.
 * Those of up to ACS_HUB_MODEL_PY_MAX_PARAMS parameters (default 12 M) are checked, with the
 * smallest member of every family that has none under the bound (VGG, ConvNeXt, FCN...), so each
 * family of the catalogue is run at a size of its own: the larger members of a family differ
 * only in depth and width. `ACS_HUB_MODEL_PY_MAX_PARAMS=all` checks every architecture (several
 * GB of weights; minutes); `ACS_HUB_MODEL_PY_ARCHS=a,b` checks those architectures only.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { appendFile, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { convert, type ConvertResult } from '../../converters/convert.js';
import { loadSource } from '../../converters/convert-file.js';
import { encodeOutput } from '../../converters/outputs.js';
import { loadCatalogue } from '../../zoo/catalogue.js';
import { detTensor, ROOT, tempDir } from '../helpers.js';
import { PYTHON, PYTHON_SETUP_HINT } from '../python.js';
import { runGraph } from './goldens/goldens.js';
import { assertCaseResult, caseAt, checkModelPy, smallestSize, writeCase, type CheckCase } from './model-py-check.js';

const exec = promisify(execFile);

/** Input sizes with pairwise coprime sides, smallest first; a network takes the first it runs at. */
const SIZES: [number, number, number][] = [
  [9, 10, 11],
  [17, 19, 23],
  [33, 35, 37],
  [75, 77, 79],
];

const DEFAULT_MAX_PARAMS = 12_000_000;

function maxParams(): number {
  const v = process.env['ACS_HUB_MODEL_PY_MAX_PARAMS'];
  if (v === undefined || v === '') return DEFAULT_MAX_PARAMS;
  if (v === 'all') return Infinity;
  const n = Number(v);
  assert.ok(Number.isFinite(n) && n > 0, `ACS_HUB_MODEL_PY_MAX_PARAMS is '${v}': a parameter count, or 'all'`);
  return n;
}

/** The catalogue's torchvision architectures to check, smallest first. */
async function architectures(bound: number): Promise<{ arch: string; family: string; params: number }[]> {
  const catalogue = await loadCatalogue();
  const byArch = new Map<string, { arch: string; family: string; params: number }>();
  for (const m of catalogue.models) {
    if (m.source.type !== 'torchvision' || m.arch === undefined) continue;
    if (m.params !== undefined) byArch.set(m.arch, { arch: m.arch, family: m.family, params: m.params });
  }
  const all = [...byArch.values()].sort((a, b) => a.params - b.params);
  const only = process.env['ACS_HUB_MODEL_PY_ARCHS'];
  if (only) {
    const names = only.split(',');
    for (const n of names) assert.ok(byArch.has(n), `ACS_HUB_MODEL_PY_ARCHS: '${n}' is not a torchvision architecture of the catalogue`);
    return all.filter((a) => names.includes(a.arch));
  }
  const chosen = all.filter((a) => a.params <= bound);
  for (const family of new Set(all.map((a) => a.family))) {
    if (!chosen.some((a) => a.family === family)) chosen.push(all.find((a) => a.family === family)!);
  }
  return chosen.sort((a, b) => a.params - b.params);
}

/**
 * The converted graph for onnxruntime: in memory, or for a network past protobuf's 2 GiB
 * (regnet_y_128gf) the model.onnx the hub writes, with its weights as external data.
 */
async function onnxOf(result: ConvertResult, dir: string): Promise<ConvertResult['graph'] | string> {
  if (result.card.parameters.converted * 4 < 1.5 * 2 ** 30) return result.graph;
  const files = encodeOutput(result, 'onnx', join(dir, 'model.onnx'));
  assert.ok(files.size > 1, 'weights past 1.8 GiB go to external data');
  for (const [name, chunks] of files) for (const chunk of chunks) await appendFile(name, chunk);
  return join(dir, 'model.onnx');
}

test('model.py of every catalogue architecture (seeded weights, from its .pth) loads strictly, matches onnxruntime and trains', async (t) => {
  const dir = await tempDir(t);
  const archs = await architectures(maxParams());
  assert.ok(archs.length >= (process.env['ACS_HUB_MODEL_PY_ARCHS'] ? 1 : 10), `architectures: ${archs.map((a) => a.arch).join(', ')}`);
  await writeFile(join(dir, 'weights-job.json'), JSON.stringify({ dir, archs: archs.map((a) => a.arch) }));
  await exec(PYTHON, [join(ROOT, 'tools', 'model_py', 'catalogue_weights.py'), join(dir, 'weights-job.json')], { timeout: 900_000 }).catch((err: Error & { stderr?: string }) => {
    assert.fail(`${PYTHON} tools/model_py/catalogue_weights.py failed (${PYTHON_SETUP_HINT}): ${err.message}\n${err.stderr ?? ''}`);
  });
  const cases: CheckCase[] = [];
  for (const { arch, family } of archs) {
    const pth = join(dir, `${arch}.pth`);
    const { source } = await loadSource(pth);
    // VGG's classifier takes a flattened 7x7 map, which a 3D network cannot keep: it is
    // fine-tuned with a new head.
    const result = convert(source, { mode: 'acs', ...(family === 'vgg' ? { head: 5 } : {}) });
    assert.equal(result.card.architecture.arch, arch, `${arch}.pth is recognised as ${arch}`);
    await rm(pth);
    const size = smallestSize(result, SIZES, 3);
    assert.ok(size, `${arch} runs at none of ${JSON.stringify(SIZES)}`);
    // Three samples: with two, train-mode BatchNorm over a 1x1x1 map gives non-finite gradients
    // in some networks, torchvision's own 2D regnet_y_128gf at 10x11 included.
    const shape = [3, 3, ...size];
    const input = detTensor(shape, 17);
    const at = join(dir, arch);
    await mkdir(at, { recursive: true });
    const expected = await runGraph(await onnxOf(result, at), input, shape);
    await writeCase(at, result, input, expected.data, ['safetensors']);
    cases.push(caseAt(at, `${arch} (acs) at ${size.join('x')}`, result, shape, expected.dims, ['train'], false));
  }
  const results = (await checkModelPy(dir, 'check', cases, undefined, 900_000)).cases;
  assert.equal(results.length, cases.length);
  const byName = new Map(results.map((r) => [r.name, r]));
  for (const c of cases) {
    await t.test(c.name, () => assertCaseResult(c, byName.get(c.name)!));
  }
});
