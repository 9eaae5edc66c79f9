/**
 * What the model.py tests share: the files of a case, the size it runs at, the checker
 * (tools/model_py/check_model_py.py, in a Python process of its own) and what each result must show.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ConvertResult } from '../../converters/convert.js';
import { inferShapes } from '../../converters/graph/shapes.js';
import { encodeOutput } from '../../converters/outputs.js';
import { ROOT } from '../helpers.js';
import { PYTHON, PYTHON_SETUP_HINT } from '../python.js';

const exec = promisify(execFile);

const CHECKER = join(ROOT, 'tools', 'model_py', 'check_model_py.py');

/** One case of the checker's job. */
export interface CheckCase {
  name: string;
  model: string;
  /** model.safetensors, loaded with safetensors.torch.load_file. */
  weights: string;
  /** model.pth of the same conversion, which must hold the very same tensors. */
  pth?: string;
  input: { file: string; shape: number[] };
  expected: { file: string; shape: readonly number[] };
  param_count: number;
  rtol?: number;
  checks: ('trace' | 'train')[];
}

/** The checker's answer for one case. */
export interface CaseResult {
  name: string;
  error?: string;
  missing_from_model: string[];
  /** Tensors whose name, dtype or values differ between model.safetensors and model.pth. */
  pth_differs: string[];
  params: number;
  param_count_ok: boolean;
  compare: { ok: boolean; why?: string; worst?: { index: number; actual: number; expected: number }; max_abs_diff?: number };
  /** Parameter tensors. */
  tensors?: number;
  no_grad?: string[];
  zero_grad?: string[];
  trace?: { ok: boolean; max_abs_diff: number };
  train?: { batchnorms: number; finite: boolean; updated: number };
}

/** The checker's answer for a job. */
export interface CheckResults {
  torch: string;
  cases: CaseResult[];
  train?: { before: number; after: number; error?: string };
}

/** The files of one case: model.py and the weights in `formats`, the input and the expected output. */
export async function writeCase(dir: string, result: ConvertResult, input: Float32Array, expected: Float32Array, formats: readonly ('safetensors' | 'pth')[] = ['safetensors', 'pth']): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const format of ['py', ...formats] as const) {
    for (const [name, chunks] of encodeOutput(result, format, join(dir, `model.${format}`))) await writeFile(name, Buffer.concat(chunks));
  }
  await writeFile(join(dir, 'input.f32'), input);
  await writeFile(join(dir, 'expected.f32'), expected);
}

/** The case of the files `writeCase` wrote to `at` (with model.pth unless it wrote only model.safetensors). */
export function caseAt(at: string, name: string, result: ConvertResult, shape: number[], outputShape: readonly number[], checks: CheckCase['checks'], pth = true): CheckCase {
  return {
    name,
    model: join(at, 'model.py'),
    weights: join(at, 'model.safetensors'),
    ...(pth ? { pth: join(at, 'model.pth') } : {}),
    input: { file: join(at, 'input.f32'), shape },
    expected: { file: join(at, 'expected.f32'), shape: outputShape },
    param_count: result.card.parameters.converted,
    checks,
  };
}

/** The first of `sizes` at which every value of the 3D graph has a non-empty shape for a batch of `batch`. */
export function smallestSize(result: ConvertResult, sizes: readonly [number, number, number][], batch: number): [number, number, number] | undefined {
  const g = result.graph;
  const fits = (s: [number, number, number]) => {
    try {
      const facts = inferShapes(g, { [g.inputs[0]!.name]: [batch, result.card.input.channels, ...s] });
      return g.nodes.every((n) => n.outputs.every((o) => facts.get(o)?.shape.every((d) => d > 0) ?? true));
    } catch {
      return false;
    }
  };
  return sizes.find(fits);
}

/** Run the checker on `cases` (and a fine-tuning job) in a Python process of its own. */
export async function checkModelPy(dir: string, name: string, cases: CheckCase[], train?: Record<string, unknown>, timeoutMs = 600_000): Promise<CheckResults> {
  const job = join(dir, `${name}.json`);
  const out = join(dir, `${name}-results.json`);
  await writeFile(job, JSON.stringify({ cases, train, threads: Math.min(4, availableParallelism()) }));
  await exec(PYTHON, [CHECKER, job, out], { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }).catch((err: Error & { stderr?: string }) => {
    assert.fail(`${PYTHON} ${CHECKER} failed (PyTorch and safetensors are needed): ${err.message}\n${err.stderr ?? ''}\n${PYTHON_SETUP_HINT}`);
  });
  return JSON.parse(await readFile(out, 'utf8')) as CheckResults;
}

/** What every result must show: a strict load, the parameter count, the output, and the checks the case asks for. */
export function assertCaseResult(c: CheckCase, r: CaseResult): void {
  assert.equal(r.error, undefined, r.error);
  assert.deepEqual(r.missing_from_model, [], 'every tensor of the checkpoint is in the model');
  assert.deepEqual(r.pth_differs, [], 'model.pth holds the tensors of model.safetensors');
  assert.ok(r.param_count_ok, `parameters: ${r.params}, converted: ${c.param_count}`);
  assert.ok(r.compare.ok, `output: ${r.compare.why ?? `element ${r.compare.worst!.index} is ${r.compare.worst!.actual}, expected ${r.compare.worst!.expected} (rtol 1e-4)`}`);
  if (c.checks.includes('train')) {
    assert.deepEqual(r.no_grad, [], 'parameters without a finite gradient');
    // A gradient can be zero by design: soft_w_core of a 1x1 conv (its three views are
    // one), the bias of a BatchNorm whose shift a later train-mode BatchNorm removes.
    assert.ok(r.zero_grad!.length <= 0.1 * r.tensors!, `all-zero gradients: ${r.zero_grad!.join(', ')}`);
    assert.ok(r.train!.finite, 'train-mode output is finite');
    assert.equal(r.train!.updated, r.train!.batchnorms, 'every BatchNorm updated its running statistics');
  }
  if (c.checks.includes('trace')) assert.ok(r.trace!.ok, `torch.jit.trace gives another output (max diff ${r.trace!.max_abs_diff})`);
}
