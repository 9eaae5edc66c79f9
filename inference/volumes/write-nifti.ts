/**
 * Write a volume or a label map as NIfTI-1 (`.nii`, or `.nii.gz`). The array is in the
 * canonical `[C, D, H, W]` layout of `volume.ts`, which is byte for byte a NIfTI image of
 * dims `[W, H, D, C]` with the canonical affine, so by default that is what is written
 * (sform and qform both set). Given `like` (the `Volume` the input was read into) and an
 * array on that same grid, the output goes back into the input file's own voxel order and
 * affine instead, so that it overlays the input voxel for voxel in any tool.
 */
import { gzipSync } from 'node:zlib';
import { InvalidArgumentError, UnsupportedError } from '../../converters/errors.js';
import { writeChunksAtomic } from '../../converters/io.js';
import { canonicalShape, columnNorms, polarRotation, reorientToGrid } from './affine.js';
import type { Affine, Volume } from './volume.js';

/** The typed arrays that can be written, and their NIfTI datatype codes. */
export type NiftiArray = Float32Array | Float64Array | Uint8Array | Int8Array | Int16Array | Uint16Array | Int32Array | Uint32Array;

const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function datatypeOf(a: NiftiArray): { code: number; bits: number } {
  if (a instanceof Float32Array) return { code: 16, bits: 32 };
  if (a instanceof Float64Array) return { code: 64, bits: 64 };
  if (a instanceof Uint8Array) return { code: 2, bits: 8 };
  if (a instanceof Int8Array) return { code: 256, bits: 8 };
  if (a instanceof Int16Array) return { code: 4, bits: 16 };
  if (a instanceof Uint16Array) return { code: 512, bits: 16 };
  if (a instanceof Int32Array) return { code: 8, bits: 32 };
  return { code: 768, bits: 32 };
}

/** What `encodeNifti` writes. */
export interface EncodeNiftiParams {
  /** Values in canonical order, `[D, H, W]` or `[C, D, H, W]` (C becomes the 4th dimension). */
  data: NiftiArray;
  shape: readonly number[];
  /** `(w, h, d, 1)` -> RAS+ mm, row-major (the `Volume`'s affine). */
  affine: Affine;
  /** The volume the input was read into: write in its file's voxel grid and affine. @default none (canonical layout) */
  like?: Pick<Volume, 'shape' | 'affine' | 'source'>;
  /** Mark the image as a label map (intent NIFTI_INTENT_LABEL, 1002). @default false */
  labels?: boolean;
  /** Up to 79 ASCII characters for the header's `descrip`. @default 'acs-hub' */
  description?: string;
  /** gzip the result. @default false (`writeNifti`: true for a `.gz` path) */
  gzip?: boolean;
}

/** Quaternion parameters (b, c, d) and qfac of an affine's rotation, as `nifti_mat44_to_quatern`. */
function quaternion(affine: Affine): { b: number; c: number; d: number; qfac: number } {
  const n = columnNorms(affine);
  const m: number[] = [];
  for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) m.push(affine[r * 4 + c]! / (n[c] || 1));
  const det = m[0]! * (m[4]! * m[8]! - m[5]! * m[7]!) - m[1]! * (m[3]! * m[8]! - m[5]! * m[6]!) + m[2]! * (m[3]! * m[7]! - m[4]! * m[6]!);
  const qfac = det < 0 ? -1 : 1;
  if (qfac < 0) for (const i of [2, 5, 8]) m[i] = -m[i]!;
  const r = polarRotation(m);
  const [r11, r12, r13, r21, r22, r23, r31, r32, r33] = r as [number, number, number, number, number, number, number, number, number];
  let a = r11 + r22 + r33 + 1;
  let b: number, c: number, d: number;
  if (a > 0.5) {
    a = 0.5 * Math.sqrt(a);
    b = (0.25 * (r32 - r23)) / a;
    c = (0.25 * (r13 - r31)) / a;
    d = (0.25 * (r21 - r12)) / a;
  } else {
    const xd = 1 + r11 - (r22 + r33);
    const yd = 1 + r22 - (r11 + r33);
    const zd = 1 + r33 - (r11 + r22);
    if (xd > 1) {
      b = 0.5 * Math.sqrt(xd);
      c = (0.25 * (r12 + r21)) / b;
      d = (0.25 * (r13 + r31)) / b;
      a = (0.25 * (r32 - r23)) / b;
    } else if (yd > 1) {
      c = 0.5 * Math.sqrt(yd);
      b = (0.25 * (r12 + r21)) / c;
      d = (0.25 * (r23 + r32)) / c;
      a = (0.25 * (r13 - r31)) / c;
    } else {
      d = 0.5 * Math.sqrt(zd);
      b = (0.25 * (r13 + r31)) / d;
      c = (0.25 * (r23 + r32)) / d;
      a = (0.25 * (r21 - r12)) / d;
    }
    if (a < 0) {
      b = -b;
      c = -c;
      d = -d;
    }
  }
  return { b, c, d, qfac };
}

/** Encode a NIfTI-1 single file (352-byte header, data at offset 352, little endian). */
export function encodeNifti(params: EncodeNiftiParams): Uint8Array {
  const { data } = params;
  const s = params.shape;
  if ((s.length !== 3 && s.length !== 4) || !s.every((x) => Number.isSafeInteger(x) && x > 0)) {
    throw new InvalidArgumentError(`'shape' must be [D, H, W] or [C, D, H, W] of positive integers, got [${s.join(', ')}]`);
  }
  const [c, d, h, w] = (s.length === 3 ? [1, ...s] : s) as [number, number, number, number];
  if (data.length !== c * d * h * w) throw new InvalidArgumentError(`'data' holds ${data.length} values, shape [${s.join(', ')}] needs ${c * d * h * w}`);
  if (params.affine.length !== 16 || !params.affine.every(Number.isFinite)) throw new InvalidArgumentError("'affine' must be 16 finite numbers (row-major 4x4)");
  let dims: number[] = [w, h, d];
  let affine = params.affine;
  let grid: Volume['source']['grid'];
  let codes = { sform: 1, qform: 1 };
  const like = params.like;
  if (like !== undefined) {
    const [ld, lh, lw] = like.shape.slice(1);
    if (ld !== d || lh !== h || lw !== w) throw new InvalidArgumentError(`'like' has the grid [${ld}, ${lh}, ${lw}] but 'data' is [${d}, ${h}, ${w}]; resample the output back to the input grid first`);
    if (like.affine.some((v, i) => Math.abs(v - params.affine[i]!) > 1e-4 * Math.max(1, Math.abs(v)))) throw new InvalidArgumentError("'affine' differs from the affine of 'like': the output is not on the input's grid");
    grid = like.source.grid;
    if (grid !== undefined) {
      if (canonicalShape(grid).some((n, a) => n !== [d, h, w][a])) throw new InvalidArgumentError("'like.source.grid' does not match 'like.shape'");
      dims = [...grid.dims];
      affine = grid.affine;
    }
    const nifti = like.source.nifti;
    if (nifti !== undefined && nifti.sformCode > 0) codes = { sform: nifti.sformCode, qform: nifti.qformCode > 0 ? nifti.qformCode : nifti.sformCode };
  }
  if (dims.some((n) => n > 32767) || c > 32767) throw new UnsupportedError(`dimensions [${dims.join(', ')}, ${c}] exceed NIfTI-1's 32767`);
  const { code, bits } = datatypeOf(data);
  // one buffer, header then voxels, written in place (the voxels are not copied twice)
  const out = new Uint8Array(352 + data.byteLength);
  const header = out.subarray(0, 352);
  const v = new DataView(out.buffer, 0, 352);
  v.setInt32(0, 348, true);
  const dim = [c > 1 ? 4 : 3, ...dims, c, 1, 1, 1];
  dim.forEach((x, i) => v.setInt16(40 + 2 * i, x, true));
  v.setInt16(68, params.labels ? 1002 : 0, true);
  v.setInt16(70, code, true);
  v.setInt16(72, bits, true);
  const zooms = columnNorms(affine);
  const q = quaternion(affine);
  [q.qfac, zooms[0], zooms[1], zooms[2], 1, 1, 1, 1].forEach((x, i) => v.setFloat32(76 + 4 * i, x, true));
  v.setFloat32(108, 352, true);
  v.setFloat32(112, 1, true);
  v.setFloat32(116, 0, true);
  header[123] = 2; // xyzt_units: mm
  const descrip = (params.description ?? 'acs-hub').replace(/[^\x20-\x7e]/g, '?').slice(0, 79);
  header.set(new TextEncoder().encode(descrip), 148);
  v.setInt16(252, codes.qform, true);
  v.setInt16(254, codes.sform, true);
  v.setFloat32(256, q.b, true);
  v.setFloat32(260, q.c, true);
  v.setFloat32(264, q.d, true);
  for (let r = 0; r < 3; r++) v.setFloat32(268 + 4 * r, affine[r * 4 + 3]!, true);
  for (let i = 0; i < 12; i++) v.setFloat32(280 + 4 * i, affine[i]!, true);
  header.set([0x6e, 0x2b, 0x31, 0], 344); // 'n+1\0'
  const Ctor = data.constructor as new (buffer: ArrayBuffer, offset: number, length: number) => NiftiArray;
  const size = bits / 8;
  if (HOST_LE) {
    const body = new Ctor(out.buffer, 352, data.length);
    if (grid !== undefined) reorientToGrid(grid, data, body, c);
    else body.set(data);
  } else {
    const values = grid === undefined ? data : new (data.constructor as new (n: number) => NiftiArray)(data.length);
    if (grid !== undefined) reorientToGrid(grid, data, values, c);
    const bv = new DataView(out.buffer, 352);
    const put: (o: number, x: number) => void =
      code === 16 ? (o, x) => bv.setFloat32(o, x, true)
      : code === 64 ? (o, x) => bv.setFloat64(o, x, true)
      : code === 2 ? (o, x) => bv.setUint8(o, x)
      : code === 256 ? (o, x) => bv.setInt8(o, x)
      : code === 4 ? (o, x) => bv.setInt16(o, x, true)
      : code === 512 ? (o, x) => bv.setUint16(o, x, true)
      : code === 8 ? (o, x) => bv.setInt32(o, x, true)
      : (o, x) => bv.setUint32(o, x, true);
    for (let i = 0; i < values.length; i++) put(i * size, values[i]!);
  }
  return params.gzip ? new Uint8Array(gzipSync(out)) : out;
}

/** Write a NIfTI file atomically; gzipped when the path ends in `.gz` (unless `gzip` says otherwise). */
export async function writeNifti(params: EncodeNiftiParams & { path: string }): Promise<number> {
  return writeChunksAtomic(params.path, [encodeNifti({ ...params, gzip: params.gzip ?? params.path.toLowerCase().endsWith('.gz') })]);
}
