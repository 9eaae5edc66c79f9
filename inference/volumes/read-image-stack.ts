/**
 * Slice stacks decoded by sharp (libvips): a multi-page TIFF (pages in file order) or a set
 * of PNG files (natural order of their names), stacked along `D`: `data[0, d, h, w]` is
 * page/file `d`, image row `h`, column `w`. 8-bit, 16-bit and float greyscale samples keep
 * their values; colour images are reduced to luminance (with a warning). No geometry: the
 * affine is `diag(sw, sh, sd, 1)` from the given spacing.
 */
import sharp, { type Metadata, type OutputInfo } from 'sharp';
import { LimitExceededError } from '../../converters/errors.js';
import { VolumeFormatError } from './errors.js';
import { spoolVolume, type SpooledVolume, type SpoolWriter } from './plane-source.js';
import type { NamedBytes } from './read-dicom.js';
import { checkSpacing, spacingAffine } from './read-npy.js';
import { checkVoxelCount, VOLUME_LIMITS, type Vec3, type Volume, type VolumeFormat } from './volume.js';

/** Options of the stack decoders. */
export interface DecodeStackParams {
  /** Voxel spacing `[sd, sh, sw]` in mm to record (images carry none). @default [1, 1, 1] */
  spacing?: Vec3;
  /** Most voxels accepted. @default VOLUME_LIMITS.maxVoxels */
  maxVoxels?: number;
}

/** Does this look like a TIFF (classic or BigTIFF, either byte order)? */
export function looksLikeTiff(b: Uint8Array): boolean {
  return b.byteLength >= 4 && ((b[0] === 0x49 && b[1] === 0x49 && (b[2] === 42 || b[2] === 43) && b[3] === 0) || (b[0] === 0x4d && b[1] === 0x4d && b[2] === 0 && (b[3] === 42 || b[3] === 43)));
}

/** Does this look like a PNG? */
export function looksLikePng(b: Uint8Array): boolean {
  return b.byteLength >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47;
}

/** Compare names in natural order: digit runs by value (`slice2` before `slice10`), the rest by code point. */
export function naturalCompare(a: string, b: string): number {
  const re = /(\d+)|(\D+)/g;
  const pa = a.match(re) ?? [];
  const pb = b.match(re) ?? [];
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i]!;
    const y = pb[i]!;
    if (x === y) continue;
    const dx = /^\d/.test(x);
    const dy = /^\d/.test(y);
    if (dx && dy) {
      const nx = BigInt(x);
      const ny = BigInt(y);
      if (nx !== ny) return nx < ny ? -1 : 1;
      return x.length - y.length;
    }
    return x < y ? -1 : 1;
  }
  return pa.length - pb.length || (a < b ? -1 : a > b ? 1 : 0);
}

const DEPTH_ARRAYS: Record<string, (buf: ArrayBuffer) => ArrayLike<number>> = {
  uchar: (b) => new Uint8Array(b),
  char: (b) => new Int8Array(b),
  ushort: (b) => new Uint16Array(b),
  short: (b) => new Int16Array(b),
  uint: (b) => new Uint32Array(b),
  int: (b) => new Int32Array(b),
  float: (b) => new Float32Array(b),
  double: (b) => new Float64Array(b),
};

interface Decoded {
  values: ArrayLike<number>;
  width: number;
  height: number;
  pages: number;
  colour: boolean;
}

/** Whether an image has colour channels (its alpha aside). */
function isColour(meta: Metadata): boolean {
  return (meta.channels ?? 1) - (meta.hasAlpha ? 1 : 0) > 1;
}

/**
 * Pages of an image (its bytes, or a file sharp reads itself) as greyscale samples of `depth`
 * (one of `DEPTH_ARRAYS`), colour reduced to luminance; at most `pixels` pixels are decoded.
 */
async function greyPages(input: Uint8Array | string, pages: { page?: number; pages: number }, pixels: number, depth: string): Promise<{ values: ArrayLike<number>; info: OutputInfo }> {
  const { data, info } = await sharp(input, { ...pages, limitInputPixels: pixels + 1 })
    .toColourspace(depth === 'ushort' ? 'grey16' : 'b-w')
    .extractChannel(0)
    .raw({ depth: depth as 'uchar' })
    .toBuffer({ resolveWithObject: true });
  return { values: DEPTH_ARRAYS[depth]!(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)), info };
}

async function decodeImage(bytes: Uint8Array, file: string, maxVoxels: number, allPages: boolean): Promise<Decoded> {
  const fail = (msg: string): never => {
    throw new VolumeFormatError(`${file}: ${msg}`, { file });
  };
  let meta: Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (err) {
    return fail(`not a readable image (${(err as Error).message})`);
  }
  const pages = allPages ? (meta.pages ?? 1) : 1;
  const width = meta.width;
  const height = meta.pageHeight ?? meta.height;
  checkVoxelCount([pages, height ?? 0, width ?? 0], file, maxVoxels, (msg) => fail(`image size: ${msg}`));
  const depth = meta.depth ?? 'uchar';
  if (DEPTH_ARRAYS[depth] === undefined) fail(`sample depth '${depth}' is not supported`);
  try {
    const { values, info } = await greyPages(bytes, { pages: allPages ? -1 : 1 }, pages * height! * width!, depth);
    if (info.width !== width || info.height !== pages * height!) fail(`pages differ in size (decoded ${info.width} x ${info.height}, expected ${pages} pages of ${width} x ${height})`);
    return { values, width: width!, height: height!, pages, colour: isColour(meta) };
  } catch (err) {
    if (err instanceof VolumeFormatError) throw err;
    return fail(`does not decode (${(err as Error).message})`);
  }
}

function stackVolume(slices: Decoded[], format: VolumeFormat, file: string, params: DecodeStackParams, warnings: string[]): Volume {
  const spacing = checkSpacing(params.spacing ?? [1, 1, 1]);
  const { width, height } = slices[0]!;
  const depth = slices.reduce((s, x) => s + x.pages, 0);
  checkVoxelCount([depth, height, width], file, params.maxVoxels ?? VOLUME_LIMITS.maxVoxels, (msg) => {
    throw new LimitExceededError(`${file}: ${msg}`);
  });
  const data = new Float32Array(depth * height * width);
  let o = 0;
  for (const s of slices) for (let i = 0; i < s.values.length; i++) data[o++] = s.values[i]!;
  if (slices.some((s) => s.colour)) warnings.push('colour images reduced to luminance');
  return { data, shape: [1, depth, height, width], spacing, affine: spacingAffine(spacing), source: { format, file, channels: 'single', warnings } };
}

/** Decode a (multi-page) TIFF held in memory: one page per slice. */
export async function decodeTiffStack(bytes: Uint8Array, params: DecodeStackParams & { file?: string } = {}): Promise<Volume> {
  const file = params.file ?? 'tiff';
  const img = await decodeImage(bytes, file, params.maxVoxels ?? VOLUME_LIMITS.maxVoxels, true);
  return stackVolume([img], 'tiff', file, params, []);
}

/** A PNG slice by name, its bytes read when it is decoded. */
export interface PngSliceFile {
  name: string;
  read(): Uint8Array | Promise<Uint8Array>;
}

/**
 * Decode PNG slices one at a time, in the natural order of their names, each checked (one size
 * for all, the voxels in all) and handed to `take` with its index and the slice count.
 */
async function eachPngSlice(files: readonly PngSliceFile[], source: string, maxVoxels: number, take: (img: Decoded, k: number, count: number) => Promise<void>): Promise<void> {
  if (files.length === 0) throw new VolumeFormatError(`${source}: no PNG files`, { file: source });
  const sorted = [...files].sort((a, b) => naturalCompare(a.name, b.name));
  let first: Decoded | undefined;
  let total = 0;
  for (const [k, f] of sorted.entries()) {
    const img = await decodeImage(await f.read(), f.name, maxVoxels, false);
    if (first !== undefined && (img.width !== first.width || img.height !== first.height)) {
      throw new VolumeFormatError(`${f.name}: ${img.width} x ${img.height} differs from ${sorted[0]!.name} (${first.width} x ${first.height}); slices must share one size`, { file: f.name });
    }
    total += img.width * img.height;
    if (total > maxVoxels) throw new LimitExceededError(`${source}: slices hold more than the limit of ${maxVoxels} voxels`);
    first ??= img;
    await take(img, k, sorted.length);
  }
}

/** Decode PNG slices (sorted here by the natural order of their names); all must share one size. */
export async function decodePngSlices(files: readonly NamedBytes[], params: DecodeStackParams & { source?: string } = {}): Promise<Volume> {
  const source = params.source ?? 'png slices';
  const slices: Decoded[] = [];
  await eachPngSlice(
    files.map((f) => ({ name: f.name, read: () => f.bytes })),
    source,
    params.maxVoxels ?? VOLUME_LIMITS.maxVoxels,
    async (img) => {
      slices.push(img);
    },
  );
  return stackVolume(slices, 'png', source, params, []);
}

/**
 * PNG slices kept on disk for sliding windows: each file read and decoded when its turn comes,
 * and its plane spooled (`spoolVolume`); the same volume, bit for bit, and the same errors as
 * `decodePngSlices`.
 */
export async function spoolPngSlices(files: readonly PngSliceFile[], params: DecodeStackParams & { source?: string; dir?: string } = {}): Promise<SpooledVolume> {
  const source = params.source ?? 'png slices';
  const maxVoxels = params.maxVoxels ?? VOLUME_LIMITS.maxVoxels;
  let writer: SpoolWriter | undefined;
  let shape: [number, number, number, number] = [1, 0, 0, 0];
  let colour = false;
  try {
    await eachPngSlice(files, source, maxVoxels, async (img, k, count) => {
      if (writer === undefined) {
        shape = [1, count, img.height, img.width];
        writer = await spoolVolume({ shape, ...(params.dir !== undefined ? { dir: params.dir } : {}) });
      }
      colour ||= img.colour;
      await writer.writePlane(0, k, Float32Array.from(img.values));
    });
    // what stackVolume checks, in its order
    const spacing = checkSpacing(params.spacing ?? [1, 1, 1]);
    checkVoxelCount(shape.slice(1), source, maxVoxels, (msg) => {
      throw new LimitExceededError(`${source}: ${msg}`);
    });
    const warnings = colour ? ['colour images reduced to luminance'] : [];
    return writer!.finish({ spacing, affine: spacingAffine(spacing), source: { format: 'png', file: source, channels: 'single', warnings } });
  } catch (err) {
    await writer?.abort();
    throw err;
  }
}

/** Most bytes of samples decoded from a TIFF in one call (a run of pages) by `spoolTiffFile`. */
const TIFF_RUN_BYTES = 16 * 1024 * 1024;

/**
 * A multi-page TIFF kept on disk for sliding windows: libvips reads a run of pages at a time
 * from the file (at most `runBytes` of samples, `TIFF_RUN_BYTES` by default), and each page is
 * written as its plane (`spoolVolume`); the same volume, bit for bit, as `decodeTiffStack`. `undefined` for a file that is not a clean stack (no metadata, pages of
 * other sizes, a page that does not decode, a size past `maxVoxels`): `decodeTiffStack` reads it
 * then, and says why.
 */
export async function spoolTiffFile(path: string, params: DecodeStackParams & { file?: string; dir?: string; runBytes?: number } = {}): Promise<SpooledVolume | undefined> {
  const file = params.file ?? path;
  const maxVoxels = params.maxVoxels ?? VOLUME_LIMITS.maxVoxels;
  let meta: Metadata;
  try {
    meta = await sharp(path, { limitInputPixels: false }).metadata();
  } catch {
    return undefined;
  }
  const pages = meta.pages ?? 1;
  const width = meta.width ?? 0;
  const height = meta.pageHeight ?? meta.height ?? 0;
  const depth = meta.depth ?? 'uchar';
  if (DEPTH_ARRAYS[depth] === undefined || !(width > 0 && height > 0 && pages * height * width <= maxVoxels)) return undefined;
  let spacing: Vec3;
  try {
    spacing = checkSpacing(params.spacing ?? [1, 1, 1]);
  } catch {
    return undefined;
  }
  const writer = await spoolVolume({ shape: [1, pages, height, width], ...(params.dir !== undefined ? { dir: params.dir } : {}) });
  // a run of pages a call (each call opens the file and sets up a pipeline): TIFF_RUN_BYTES of samples
  const run = Math.max(1, Math.floor((params.runBytes ?? TIFF_RUN_BYTES) / (width * height * 8)));
  try {
    for (let k = 0; k < pages; k += run) {
      const n = Math.min(run, pages - k);
      const { values, info } = await greyPages(path, { page: k, pages: n }, n * height * width, depth);
      if (info.width !== width || info.height !== n * height) throw new Error('a page of another size');
      const plane = new Float32Array(width * height);
      for (let p = 0; p < n; p++) {
        for (let i = 0; i < plane.length; i++) plane[i] = values[p * plane.length + i]!;
        await writer.writePlane(0, k + p, plane);
      }
    }
  } catch {
    await writer.abort();
    return undefined;
  }
  const warnings = isColour(meta) ? ['colour images reduced to luminance'] : [];
  return writer.finish({ spacing, affine: spacingAffine(spacing), source: { format: 'tiff', file, channels: 'single', warnings } });
}
