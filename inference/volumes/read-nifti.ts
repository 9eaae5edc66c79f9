/**
 * NIfTI-1 and NIfTI-2 single-file images (`.nii`, `.nii.gz`), either byte order, into a
 * canonical `Volume`. The affine comes from the sform when `sform_code > 0`, else from the
 * qform when `qform_code > 0`, else from pixdim alone the way nibabel does it
 * (`-pixdim[1]` along i, origin at the grid centre). `scl_slope`/`scl_inter` are applied
 * (in double precision, then rounded to float32) unless the slope is 0 or not finite.
 * Dimensions 4 to 7 (time, vector components) all become channels, time fastest; RGB24 and
 * RGBA32 voxels become 3 or 4 channels.
 */
import type { Budgets } from '../../converters/budgets.js';
import { InvalidArgumentError } from '../../converters/errors.js';
import { VolumeFormatError, VolumeUnsupportedError } from './errors.js';
import { gridToVolume, type GridToVolumeParams } from './grid-volume.js';
import { gunzipBounded, looksLikeGzip } from './gunzip.js';
import { decodeSamples, SAMPLE_BYTES, type SampleType } from './samples.js';
import { checkVoxelCount, VOLUME_LIMITS, type Affine, type Volume } from './volume.js';

/** NIfTI datatype codes this reader decodes, and their sample type. */
export const NIFTI_DATATYPES: Record<number, { type: SampleType; components: number; name: string }> = {
  2: { type: 'uint8', components: 1, name: 'uint8' },
  4: { type: 'int16', components: 1, name: 'int16' },
  8: { type: 'int32', components: 1, name: 'int32' },
  16: { type: 'float32', components: 1, name: 'float32' },
  64: { type: 'float64', components: 1, name: 'float64' },
  128: { type: 'uint8', components: 3, name: 'RGB24' },
  256: { type: 'int8', components: 1, name: 'int8' },
  512: { type: 'uint16', components: 1, name: 'uint16' },
  768: { type: 'uint32', components: 1, name: 'uint32' },
  1024: { type: 'int64', components: 1, name: 'int64' },
  1280: { type: 'uint64', components: 1, name: 'uint64' },
  2304: { type: 'uint8', components: 4, name: 'RGBA32' },
};

const UNSUPPORTED_DATATYPES: Record<number, string> = {
  1: 'binary (1 bit)',
  32: 'complex64',
  1536: 'float128',
  1792: 'complex128',
  2048: 'complex256',
};

/** The header fields the reader uses. */
export interface NiftiHeader {
  version: 1 | 2;
  littleEndian: boolean;
  headerSize: number;
  /** `dim[0..7]`. */
  dim: number[];
  datatype: number;
  bitpix: number;
  /** `pixdim[0..7]`. */
  pixdim: number[];
  voxOffset: number;
  sclSlope: number;
  sclInter: number;
  qformCode: number;
  sformCode: number;
  quatern: [number, number, number];
  qoffset: [number, number, number];
  srow: number[];
  xyztUnits: number;
  intentCode: number;
}

/** Does this look like an uncompressed NIfTI-1 or NIfTI-2 header? */
export function looksLikeNifti(bytes: Uint8Array): boolean {
  if (bytes.byteLength < 4) return false;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const le = v.getInt32(0, true);
  const be = v.getInt32(0, false);
  return le === 348 || be === 348 || le === 540 || be === 540;
}

/** Parse a NIfTI-1/2 header; throws `VolumeFormatError` naming `file` when it is malformed. */
export function parseNiftiHeader(bytes: Uint8Array, file: string): NiftiHeader {
  const fail = (msg: string): never => {
    throw new VolumeFormatError(`${file}: ${msg}`, { file });
  };
  if (bytes.byteLength < 4) fail(`${bytes.byteLength} bytes is too short for a NIfTI header`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let le = true;
  let size = v.getInt32(0, true);
  if (size !== 348 && size !== 540) {
    size = v.getInt32(0, false);
    le = false;
  }
  if (size !== 348 && size !== 540) fail(`not a NIfTI file: sizeof_hdr is ${v.getInt32(0, true)}, expected 348 (NIfTI-1) or 540 (NIfTI-2)`);
  if (bytes.byteLength < size) fail(`file is ${bytes.byteLength} bytes, shorter than its ${size}-byte header (truncated)`);
  const magic = (off: number, n: number): string => String.fromCharCode(...bytes.subarray(off, off + n));
  if (size === 348) {
    const m = magic(344, 4);
    if (m === 'ni1\0') throw new VolumeUnsupportedError(`${file}: a NIfTI-1 header/image pair (.hdr/.img) is not supported; save it as one .nii file`, { file });
    if (m !== 'n+1\0') fail(`bad NIfTI-1 magic ${JSON.stringify(m)} at byte 344, expected "n+1\\0"`);
    const i16 = (o: number): number => v.getInt16(o, le);
    const f32 = (o: number): number => v.getFloat32(o, le);
    return {
      version: 1,
      littleEndian: le,
      headerSize: 348,
      dim: Array.from({ length: 8 }, (_, i) => i16(40 + 2 * i)),
      datatype: i16(70),
      bitpix: i16(72),
      pixdim: Array.from({ length: 8 }, (_, i) => f32(76 + 4 * i)),
      voxOffset: f32(108),
      sclSlope: f32(112),
      sclInter: f32(116),
      xyztUnits: bytes[123]!,
      intentCode: i16(68),
      qformCode: i16(252),
      sformCode: i16(254),
      quatern: [f32(256), f32(260), f32(264)],
      qoffset: [f32(268), f32(272), f32(276)],
      srow: Array.from({ length: 12 }, (_, i) => f32(280 + 4 * i)),
    };
  }
  const m = magic(4, 8);
  if (m === 'ni2\0\r\n\x1a\n') throw new VolumeUnsupportedError(`${file}: a NIfTI-2 header/image pair is not supported; save it as one .nii file`, { file });
  if (m !== 'n+2\0\r\n\x1a\n') fail(`bad NIfTI-2 magic ${JSON.stringify(m)} at byte 4, expected "n+2\\0\\r\\n\\x1a\\n"`);
  const i64 = (o: number): number => {
    const x = v.getBigInt64(o, le);
    if (x > BigInt(Number.MAX_SAFE_INTEGER) || x < -BigInt(Number.MAX_SAFE_INTEGER)) fail(`64-bit field at byte ${o} is out of range (${x})`);
    return Number(x);
  };
  const f64 = (o: number): number => v.getFloat64(o, le);
  const i32 = (o: number): number => v.getInt32(o, le);
  return {
    version: 2,
    littleEndian: le,
    headerSize: 540,
    dim: Array.from({ length: 8 }, (_, i) => i64(16 + 8 * i)),
    datatype: v.getInt16(12, le),
    bitpix: v.getInt16(14, le),
    pixdim: Array.from({ length: 8 }, (_, i) => f64(104 + 8 * i)),
    voxOffset: i64(168),
    sclSlope: f64(176),
    sclInter: f64(184),
    qformCode: i32(344),
    sformCode: i32(348),
    quatern: [f64(352), f64(360), f64(368)],
    qoffset: [f64(376), f64(384), f64(392)],
    srow: Array.from({ length: 12 }, (_, i) => f64(400 + 8 * i)),
    xyztUnits: i32(500),
    intentCode: i32(504),
  };
}

/** Where a NIfTI's voxels lie and what they are. */
export interface NiftiLayout {
  /** File grid `[ni, nj, nk]`. */
  dims: [number, number, number];
  /** Dimensions 4 to 7 and RGB components together. */
  channels: number;
  type: SampleType;
  /** Samples per voxel (3 or 4 for RGB, else 1). */
  components: number;
  /** Byte range of the voxels in the (inflated) file. */
  start: number;
  end: number;
}

/** The layout a header implies, validated: grid dims, channels, sample type, data range. */
function layout(h: NiftiHeader, file: string, maxVoxels: number): NiftiLayout {
  const fail = (msg: string): never => {
    throw new VolumeFormatError(`${file}: ${msg}`, { file });
  };
  const ndim = h.dim[0]!;
  if (!(ndim >= 1 && ndim <= 7)) fail(`dim[0] is ${ndim}; it must be between 1 and 7`);
  const dims = h.dim.slice(1, ndim + 1);
  checkVoxelCount(dims, file, maxVoxels, (msg) => fail(`dim: ${msg}`));
  const dt = NIFTI_DATATYPES[h.datatype];
  if (dt === undefined) {
    const name = UNSUPPORTED_DATATYPES[h.datatype];
    if (name !== undefined) throw new VolumeUnsupportedError(`${file}: NIfTI datatype ${h.datatype} (${name}) is not supported`, { file });
    fail(`unknown NIfTI datatype ${h.datatype}`);
  }
  const { type, components } = dt!;
  const sampleBits = SAMPLE_BYTES[type] * 8 * components;
  if (h.bitpix !== sampleBits) fail(`bitpix is ${h.bitpix} but datatype ${h.datatype} (${dt!.name}) has ${sampleBits} bits`);
  const spatial: [number, number, number] = [dims[0] ?? 1, dims[1] ?? 1, dims[2] ?? 1];
  const extra = dims.slice(3).reduce((a, b) => a * b, 1);
  const channels = extra * components;
  checkVoxelCount([...spatial, channels], file, maxVoxels, (msg) => fail(`dim: ${msg}`));
  let start = h.voxOffset;
  if (!Number.isInteger(start) || start < 0) fail(`vox_offset ${start} is not a non-negative integer`);
  if (start === 0) start = h.headerSize + 4;
  if (start < h.headerSize) fail(`vox_offset ${start} lies inside the ${h.headerSize}-byte header`);
  const end = start + spatial[0] * spatial[1] * spatial[2] * channels * SAMPLE_BYTES[type];
  return { dims: spatial, channels, type, components, start, end };
}

function quaternionAffine(h: NiftiHeader): Affine {
  const [b, c, d] = h.quatern;
  const w2 = 1 - (b * b + c * c + d * d);
  const a = w2 < 0 ? 0 : Math.sqrt(w2);
  const r = [
    a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c),
    2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b),
    2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b,
  ];
  const qfac = h.pixdim[0]! < 0 ? -1 : 1;
  const zoom = [Math.abs(h.pixdim[1]!), Math.abs(h.pixdim[2]!), Math.abs(h.pixdim[3]!) * qfac];
  const out: Affine = [];
  for (let row = 0; row < 3; row++) {
    for (let col = 0; col < 3; col++) out.push(r[row * 3 + col]! * zoom[col]!);
    out.push(h.qoffset[row]!);
  }
  out.push(0, 0, 0, 1);
  return out;
}

/** Is this affine's 3x3 part finite with no zero-length column (usable as a voxel grid)? */
function usable(affine: Affine): boolean {
  return affine.every(Number.isFinite) && [0, 1, 2].every((c) => Math.hypot(affine[c]!, affine[4 + c]!, affine[8 + c]!) > 0);
}

/**
 * The affine a header gives, and which field it came from: the sform, else the qform, each
 * only when set and usable (finite, no zero-length axis), else pixdim alone.
 */
export function niftiAffine(h: NiftiHeader, dims: readonly number[]): { affine: Affine; from: 'sform' | 'qform' | 'pixdim' } {
  if (h.sformCode > 0) {
    const sform = [...h.srow, 0, 0, 0, 1];
    if (usable(sform)) return { affine: sform, from: 'sform' };
  }
  if (h.qformCode > 0) {
    const qform = quaternionAffine(h);
    if (usable(qform)) return { affine: qform, from: 'qform' };
  }
  // A zero, NaN or infinite pixdim is taken as 1 mm, as nibabel takes a zero one.
  const step = (p: number): number => (Number.isFinite(p) && p !== 0 ? p : 1);
  const zoom = [-step(h.pixdim[1]!), step(h.pixdim[2]!), step(h.pixdim[3]!)];
  const affine: Affine = [];
  for (let row = 0; row < 3; row++) {
    for (let col = 0; col < 3; col++) affine.push(row === col ? zoom[row]! : 0);
    affine.push((-(dims[row]! - 1) / 2) * zoom[row]!);
  }
  affine.push(0, 0, 0, 1);
  return { affine, from: 'pixdim' };
}

/** Options of `decodeNifti`. */
export interface DecodeNiftiParams {
  /** Name used in error messages. @default 'nifti' */
  file?: string;
  /** Most voxels (all channels) accepted. @default VOLUME_LIMITS.maxVoxels */
  maxVoxels?: number;
  /** Budgets on what a `.nii.gz` inflates to (`unpackedEntryBytes`, `compressionRatio`). @default DEFAULT_BUDGETS */
  budgets?: Partial<Budgets>;
}

/** Decode a `.nii` or `.nii.gz` held in memory into a canonical volume. */
export async function decodeNifti(bytes: Uint8Array, params: DecodeNiftiParams = {}): Promise<Volume> {
  const file = params.file ?? 'nifti';
  const maxVoxels = params.maxVoxels ?? VOLUME_LIMITS.maxVoxels;
  if (!(maxVoxels > 0)) throw new InvalidArgumentError(`'maxVoxels' must be positive, got ${maxVoxels}`);
  const fail = (msg: string): never => {
    throw new VolumeFormatError(`${file}: ${msg}`, { file });
  };
  let raw = bytes;
  if (looksLikeGzip(bytes)) {
    raw = await gunzipBounded({
      bytes,
      fail,
      file,
      budgets: params.budgets,
      sizeFromHead: (head) => {
        if (head.byteLength < 4) return undefined;
        if (!looksLikeNifti(head)) parseNiftiHeader(head, file);
        const v = new DataView(head.buffer, head.byteOffset, head.byteLength);
        const need = v.getInt32(0, true) === 540 || v.getInt32(0, false) === 540 ? 540 : 348;
        if (head.byteLength < need) return undefined;
        return layout(parseNiftiHeader(head, file), file, maxVoxels).end;
      },
    });
  }
  const h = parseNiftiHeader(raw, file);
  const plan = planNifti(h, file, maxVoxels);
  const { lay } = plan;
  if (lay.start > raw.byteLength) fail(`vox_offset ${lay.start} lies beyond the end of the file (${raw.byteLength} bytes)`);
  if (lay.end > raw.byteLength) fail(`voxel data [${lay.start}, ${lay.end}) runs past the end of the file (${raw.byteLength} bytes; truncated)`);
  const n = lay.dims[0] * lay.dims[1] * lay.dims[2];
  const samples = decodeSamples(raw, lay.start, (lay.end - lay.start) / SAMPLE_BYTES[lay.type], lay.type, h.littleEndian);
  const { slope, inter } = plan;
  const comps = lay.components;
  // RGB voxels are interleaved per voxel; other channels are whole blocks, one after another.
  const read =
    comps > 1
      ? (p: number): number => {
          const c = Math.floor(p / n);
          return samples[(p - c * n) * comps + (c % comps) + Math.floor(c / comps) * n * comps]!;
        }
      : slope === 1 && inter === 0
        ? (p: number): number => samples[p]!
        : (p: number): number => samples[p]! * slope + inter;
  return gridToVolume({ ...plan.grid, read });
}

/** What a NIfTI header says of its voxels: where they lie, how to scale them, and the grid they make. */
export interface NiftiPlan {
  lay: NiftiLayout;
  /** `scl_slope` and `scl_inter`, or 1 and 0 where they do not apply. */
  slope: number;
  inter: number;
  /** The file grid and what to carry to the volume (`gridToVolume` without `read`). */
  grid: Omit<GridToVolumeParams, 'read'>;
}

/** Plan the decoding of a header (validated: layout, scaling, affine), before any voxel is read. */
export function planNifti(h: NiftiHeader, file: string, maxVoxels: number): NiftiPlan {
  const lay = layout(h, file, maxVoxels);
  let slope = h.sclSlope;
  let inter = h.sclInter;
  if (lay.components > 1 || slope === 0 || !Number.isFinite(slope)) {
    slope = 1;
    inter = 0;
  } else if (!Number.isFinite(inter)) {
    throw new VolumeFormatError(`${file}: scl_slope is ${slope} but scl_inter is ${inter}`, { file });
  }
  const warnings: string[] = [];
  const { affine, from } = niftiAffine(h, lay.dims);
  if ((h.sformCode > 0 && from !== 'sform') || (h.qformCode > 0 && from === 'pixdim')) {
    warnings.push(`the ${h.sformCode > 0 ? 'sform' : 'qform'} is not finite or has a zero-length axis: the geometry comes from ${from === 'qform' ? 'the qform' : 'pixdim'}`);
  }
  return {
    lay,
    slope,
    inter,
    grid: {
      dims: lay.dims,
      channels: lay.channels,
      affine,
      source: {
        format: 'nifti',
        file,
        channels: lay.components > 1 ? 'rgb' : lay.channels > 1 ? 'nifti-4d' : 'single',
        nifti: { version: h.version, datatype: h.datatype, sformCode: h.sformCode, qformCode: h.qformCode, affineFrom: from, xyztUnits: h.xyztUnits },
        warnings,
      },
    },
  };
}
