/**
 * Full-size segmentation networks with seeded weights and their independent 3D PyTorch
 * reference, made at test time by tools/goldens/torchvision_seg.py (Debian's PyTorch).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Mode } from '../../../converters/convert.js';
import { ROOT } from '../../helpers.js';
import { PYTHON } from '../../python.js';

const exec = promisify(execFile);

/** One network at one size in one mode (the fields of torchvision_seg.py's CASE). */
export interface SegCase {
  /** A torchvision segmentation builder, or `unet` (tools/goldens/pytorch_unet.py). */
  name: string;
  /** The files' prefix. @default name */
  id?: string;
  size: [number, number, number];
  mode: Mode;
  classes?: number;
  in_channels?: number;
  aux?: boolean;
  /** Export the network to ONNX too. @default true */
  onnx?: boolean;
}

/** What the reference computed for one case. */
export interface SegReference {
  shape: number[];
  params_2d: number;
  max_abs: number;
  input: Float32Array;
  expected: Float32Array;
}

/** The key of a case's files and results: `<id>.<mode>.<DxHxW>`. */
export function caseKey(c: SegCase): string {
  return `${c.id ?? c.name}.${c.mode}.${c.size.join('x')}`;
}

/** The path of a network's `.onnx` or `.pth` in `dir`. */
export function networkFile(dir: string, c: SegCase, format: 'onnx' | 'pth'): string {
  return join(dir, `${c.id ?? c.name}.${format}`);
}

async function readF32(file: string): Promise<Float32Array> {
  const bytes = await readFile(file);
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

/** Build, export and run every case's reference in one python3 process; the results by case key. */
export async function segReferences(dir: string, cases: readonly SegCase[]): Promise<Map<string, SegReference>> {
  await writeFile(join(dir, 'job.json'), JSON.stringify({ dir, cases }));
  await exec(PYTHON, [join(ROOT, 'tools', 'goldens', 'torchvision_seg.py'), join(dir, 'job.json')], { timeout: 600_000 }).catch((err: Error & { stderr?: string }) => {
    assert.fail(`${PYTHON} tools/goldens/torchvision_seg.py failed (PyTorch is needed: apt-get install python3-torch): ${err.message}\n${err.stderr ?? ''}`);
  });
  const results = JSON.parse(await readFile(join(dir, 'results.json'), 'utf8')) as Record<string, Omit<SegReference, 'input' | 'expected'>>;
  const out = new Map<string, SegReference>();
  for (const c of cases) {
    const key = caseKey(c);
    const r = results[key];
    assert.ok(r, `the reference computed ${key}`);
    out.set(key, { ...r, input: await readF32(join(dir, `${key}.input.f32`)), expected: await readF32(join(dir, `${key}.expected.f32`)) });
  }
  return out;
}
