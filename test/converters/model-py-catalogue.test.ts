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
 * smallest member of every family that has none under the bound (VGG, Wide ResNet), so each
 * family of the catalogue is run at a size of its own: the larger members of a family differ
 * only in depth and width. `ACS_HUB_MODEL_PY_MAX_PARAMS=all` checks every architecture (several
 * GB of weights; minutes); `ACS_HUB_MODEL_PY_ARCHS=a,b` checks those architectures only.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { appendFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { convert, type ConvertResult } from '../../converters/convert.js';
import { loadSource } from '../../converters/convert-file.js';
import { inferShapes } from '../../converters/graph/shapes.js';
import { encodeOutput } from '../../converters/outputs.js';
import { loadCatalogue } from '../../zoo/catalogue.js';
import { detTensor, ROOT, tempDir } from '../helpers.js';
import { PYTHON, PYTHON_SETUP_HINT } from '../python.js';
import { runGraph } from './goldens/goldens.js';

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

function smallestSize(result: ConvertResult): [number, number, number] {
  const g = result.graph;
  const fits = (s: [number, number, number]) => {
    try {
      const facts = inferShapes(g, { [g.inputs[0]!.name]: [3, result.card.input.channels, ...s] });
      return g.nodes.every((n) => n.outputs.every((o) => facts.get(o)?.shape.every((d) => d > 0) ?? true));
    } catch {
      return false;
    }
  };
  const size = SIZES.find(fits);
  assert.ok(size, `no size of ${JSON.stringify(SIZES)} runs`);
  return size;
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

interface CaseResult {
  name: string;
  error?: string;
  missing_from_model: string[];
  params: number;
  param_count_ok: boolean;
  compare: { ok: boolean; why?: string; worst?: { index: number; actual: number; expected: number } };
  tensors?: number;
  no_grad?: string[];
  zero_grad?: string[];
  train?: { batchnorms: number; finite: boolean; updated: number };
}

test('model.py of every catalogue architecture (seeded weights, from its .pth) loads strictly, matches onnxruntime and trains', async (t) => {
  const dir = await tempDir(t);
  const archs = await architectures(maxParams());
  assert.ok(archs.length >= (process.env['ACS_HUB_MODEL_PY_ARCHS'] ? 1 : 10), `architectures: ${archs.map((a) => a.arch).join(', ')}`);
  await writeFile(join(dir, 'weights-job.json'), JSON.stringify({ dir, archs: archs.map((a) => a.arch) }));
  await exec(PYTHON, [join(ROOT, 'tools', 'model_py', 'catalogue_weights.py'), join(dir, 'weights-job.json')], { timeout: 900_000 }).catch((err: Error & { stderr?: string }) => {
    assert.fail(`${PYTHON} tools/model_py/catalogue_weights.py failed (${PYTHON_SETUP_HINT}): ${err.message}\n${err.stderr ?? ''}`);
  });
  const cases = [];
  for (const { arch, family } of archs) {
    const pth = join(dir, `${arch}.pth`);
    const { source } = await loadSource(pth);
    // VGG's classifier takes a flattened 7x7 map, which a 3D network cannot keep: it is
    // fine-tuned with a new head.
    const result = convert(source, { mode: 'acs', ...(family === 'vgg' ? { head: 5 } : {}) });
    assert.equal(result.card.architecture.arch, arch, `${arch}.pth is recognised as ${arch}`);
    await rm(pth);
    const size = smallestSize(result);
    // Three samples: with two, train-mode BatchNorm over a 1x1x1 map gives non-finite gradients
    // in some networks, torchvision's own 2D regnet_y_128gf at 10x11 included.
    const shape = [3, 3, ...size];
    const input = detTensor(shape, 17);
    const at = join(dir, arch);
    await mkdir(at, { recursive: true });
    const expected = await runGraph(await onnxOf(result, at), input, shape);
    for (const format of ['py', 'safetensors'] as const) {
      for (const [name, chunks] of encodeOutput(result, format, join(at, `model.${format}`))) await writeFile(name, Buffer.concat(chunks));
    }
    await writeFile(join(at, 'input.f32'), input);
    await writeFile(join(at, 'expected.f32'), expected.data);
    cases.push({
      name: `${arch} (acs) at ${size.join('x')}`,
      model: join(at, 'model.py'),
      weights: join(at, 'model.safetensors'),
      input: { file: join(at, 'input.f32'), shape },
      expected: { file: join(at, 'expected.f32'), shape: expected.dims },
      param_count: result.card.parameters.converted,
      checks: ['train'],
    });
  }
  const job = join(dir, 'check.json');
  const out = join(dir, 'check-results.json');
  await writeFile(job, JSON.stringify({ cases, threads: 1 }));
  await exec(PYTHON, [join(ROOT, 'tools', 'model_py', 'check_model_py.py'), job, out], { timeout: 900_000, maxBuffer: 16 * 1024 * 1024 }).catch((err: Error & { stderr?: string }) => {
    assert.fail(`${PYTHON} tools/model_py/check_model_py.py failed (${PYTHON_SETUP_HINT}): ${err.message}\n${err.stderr ?? ''}`);
  });
  const results = (JSON.parse(await readFile(out, 'utf8')) as { cases: CaseResult[] }).cases;
  assert.equal(results.length, cases.length);
  const byName = new Map(results.map((r) => [r.name, r]));
  for (const c of cases) {
    await t.test(c.name, () => {
      const r = byName.get(c.name)!;
      assert.equal(r.error, undefined, r.error);
      assert.deepEqual(r.missing_from_model, [], 'every tensor of the checkpoint is in the model');
      assert.ok(r.param_count_ok, `parameters: ${r.params}, converted: ${c.param_count}`);
      assert.ok(r.compare.ok, `output: ${r.compare.why ?? `element ${r.compare.worst!.index} is ${r.compare.worst!.actual}, expected ${r.compare.worst!.expected} (rtol 1e-4)`}`);
      assert.deepEqual(r.no_grad, [], 'parameters without a finite gradient');
      assert.ok(r.zero_grad!.length <= 0.1 * r.tensors!, `all-zero gradients: ${r.zero_grad!.join(', ')}`);
      assert.ok(r.train!.finite, 'train-mode output is finite');
      assert.equal(r.train!.updated, r.train!.batchnorms, 'every BatchNorm updated its running statistics');
    });
  }
});
