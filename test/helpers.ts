/** Helpers shared by the tests: fixture paths, temporary folders, hashes, float comparison. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { crc32, deflateRawSync } from 'node:zlib';
import type { TestContext } from 'node:test';
import { seededRandom } from '../converters/modes/head.js';
import { encodeSafetensors, readSafetensors } from '../converters/formats/safetensors.js';
import { bytesOf, type StateDict, type Tensor } from '../converters/tensor.js';
import { encodeNifti } from '../inference/volumes/index.js';

/** The repository root (tests run from `dist/test/`). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Path of a file under `test/fixtures/`. */
export function fixture(...parts: string[]): string {
  return join(ROOT, 'test', 'fixtures', ...parts);
}

/** The compiled CLI entry point. */
export const CLI = join(ROOT, 'dist', 'cli', 'main.js');

/** A temporary folder removed when the test ends. */
export async function tempDir(t: TestContext | { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'acs-hub-test-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** sha256 (hex) of bytes. */
export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** sha256 of a tensor's raw little-endian bytes. */
export function tensorSha256(t: Tensor): string {
  return sha256(bytesOf(t));
}

/** Seeded PRNG (mulberry32): the same sequence for the same seed. */
export const prng = seededRandom;

/**
 * Assert that two float arrays agree elementwise within `atol + rtol * |expected|`,
 * reporting the worst element (as onnxruntime's assertFloatEqual does).
 */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, opts: { rtol?: number; atol?: number; what?: string } = {}): void {
  const rtol = opts.rtol ?? 1e-4;
  const atol = opts.atol ?? 1e-5;
  assert.equal(actual.length, expected.length, `${opts.what ?? 'array'}: length ${actual.length} != ${expected.length}`);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    const excess = Math.abs(a - e) - (atol + rtol * Math.abs(e));
    if (!(excess <= 0) && (worst < 0 || excess > worstExcess || Number.isNaN(excess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) {
    assert.fail(`${opts.what ?? 'array'}: element ${worst} is ${actual[worst]}, expected ${expected[worst]} (rtol ${rtol}, atol ${atol})`);
  }
}

/**
 * The deterministic tensor of the goldens (tools/goldens): element i of a tensor with seed s
 * is u / 2^32 * 2 - 1 (float32) times `scale` (float32), u = ((i + s * 1000003) * 2654435761) mod 2^32.
 */
export function detTensor(shape: readonly number[], seed: number, scale = 1): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const s = Math.fround(scale);
  for (let i = 0; i < n; i++) {
    const x = (i + seed * 1000003) >>> 0;
    const u = Math.imul(x, 2654435761 | 0) >>> 0;
    out[i] = Math.fround(Math.fround((u / 4294967296) * 2 - 1) * s);
  }
  return out;
}

/**
 * The tiny ResNet-18 fixture (4 to 32 channels) at `factor` times its widths, with seeded
 * values, as safetensors bytes: a valid checkpoint of a chosen size, made at run time (a factor
 * of 8 gives 2.8 M parameters, 10.8 MiB).
 */
export function widerResnet18(factor: number): Buffer {
  const tiny = readSafetensors(readFileSync(fixture('formats', 'resnet18_tiny.safetensors'))).tensors;
  const wide: StateDict = new Map();
  let seed = 1;
  for (const [name, t] of tiny) {
    if (t.dtype !== 'F32') {
      wide.set(name, t);
      continue;
    }
    const shape = t.shape.map((d, i) => (i < 2 && [4, 8, 16, 32].includes(d) ? d * factor : d));
    const data = detTensor(shape, seed++, 0.05);
    if (name.endsWith('running_var')) data.forEach((v, i) => (data[i] = 1 + Math.abs(v)));
    wide.set(name, { dtype: 'F32', shape, data });
  }
  return Buffer.concat(encodeSafetensors(wide));
}

const exec = promisify(execFile);

/**
 * Run the CLI; resolve with its exit code and output (never rejects).
 * @param opts.node - Node.js options before the CLI's path (e.g. `--import`). @default none
 */
export async function cli(args: string[], opts: { cwd?: string; env?: Record<string, string>; node?: string[] } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const env = opts.env ? { ...process.env, ...opts.env } : undefined;
    const { stdout, stderr } = await exec(process.execPath, [...(opts.node ?? []), CLI, ...args], { cwd: opts.cwd, env, maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}


/**
 * A zip archive of deflated entries (the project's writer stores them), with truthful sizes in
 * its headers: for archives that inflate to much more than they weigh.
 */
export function deflatedZip(entries: readonly { name: string; data: Uint8Array }[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    const packed = deflateRawSync(e.data);
    const crc = crc32(e.data) >>> 0;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(8, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(packed.length, 18);
    local.writeUInt32LE(e.data.byteLength, 22);
    local.writeUInt16LE(name.length, 26);
    locals.push(local, name, packed);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(8, 10);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(packed.length, 20);
    central.writeUInt32LE(e.data.byteLength, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    centrals.push(central, name);
    offset += 30 + name.length + packed.length;
  }
  const cd = Buffer.concat(centrals);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(entries.length, 8);
  eocd.writeUInt16LE(entries.length, 10);
  eocd.writeUInt32LE(cd.length, 12);
  eocd.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, eocd]);
}

/** Resident memory growth (bytes) while `fn` runs, sampled every few milliseconds. */
export async function rssGrowth<T>(fn: () => Promise<T>): Promise<{ result: T; growth: number }> {
  const before = process.memoryUsage.rss();
  let peak = before;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 5);
  try {
    const result = await fn();
    peak = Math.max(peak, process.memoryUsage.rss());
    return { result, growth: peak - before };
  } finally {
    clearInterval(timer);
  }
}

/** A gzipped NIfTI of `n^3` CT-like voxels (or `values`) with `spacing` mm voxels. */
export function ctNifti(n: number, spacing = 1, values?: Float32Array): Buffer {
  const r = prng(n);
  const data = values ?? Float32Array.from({ length: n ** 3 }, () => Math.round(r() * 1400 - 1000));
  return Buffer.from(encodeNifti({ data, shape: [n, n, n], affine: [spacing, 0, 0, 0, 0, spacing, 0, 0, 0, 0, spacing, 0, 0, 0, 0, 1], gzip: true }));
}

/**
 * Two 16^3 NIfTIs of 2 mm voxels whose geometry is broken: a qform of NaN and no sform (the
 * geometry must come from pixdim), and a sform with a zero axis (it must come from the qform).
 */
export function brokenGeometryNiftis(): [Buffer, Buffer] {
  const nanQform = Buffer.from(encodeNifti({ data: new Float32Array(16 ** 3).fill(-500), shape: [16, 16, 16], affine: [2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1] }));
  nanQform.writeInt16LE(0, 254);
  nanQform.writeFloatLE(NaN, 256);
  const flat = Buffer.from(nanQform);
  flat.writeInt16LE(1, 254);
  for (const o of [280, 296, 312]) flat.writeFloatLE(0, o);
  flat.writeInt16LE(0, 252);
  return [nanQform, flat];
}
