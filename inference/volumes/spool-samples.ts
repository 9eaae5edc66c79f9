/**
 * NumPy `.npy` files and raw files kept on disk for sliding windows. In C order their samples are
 * already the canonical `[C, D, H, W]` planes, so each plane is read from the file at its
 * offset, converted to float32 and spooled (`spoolVolume`), one plane in memory at a time; a
 * `.npy` in Fortran order goes through `spoolGrid` as a sagittal NIfTI does. The same volume, bit
 * for bit, and the same errors as `decodeNpy` and `decodeRaw` of the file read whole.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { canonicalGrid } from './grid-volume.js';
import { spoolVolume, type SpooledVolume } from './plane-source.js';
import { checkSpacing, looksLikeNpy, npyLayout, NPY_HEAD_BYTES, spacingAffine, type DecodeNpyParams } from './read-npy.js';
import { rawLayout, type DecodeRawParams } from './read-raw.js';
import { decodeSamples, SAMPLE_BYTES, type SampleType } from './samples.js';
import { spoolGrid } from './spool-grid.js';
import type { Volume } from './volume.js';

/** Where a file's canonical planes lie. */
interface SampleLayout {
  shape: [number, number, number, number];
  dataOffset: number;
  type: SampleType;
  littleEndian: boolean;
}

/**
 * A reader of `count` samples at a time into one float32 buffer (valid until the next read): the
 * `index`-th run of them after the layout's data offset.
 */
function sampleReader(fh: FileHandle, layout: SampleLayout, count: number, file: string): (index: number) => Promise<Float32Array> {
  const bytes = count * SAMPLE_BYTES[layout.type];
  const raw = Buffer.alloc(bytes);
  const values = new Float32Array(count);
  return async (index) => {
    const at = layout.dataOffset + index * bytes;
    const { bytesRead } = await fh.read(raw, 0, bytes, at);
    if (bytesRead !== bytes) throw new Error(`${file}: changed while it was read (read ${bytesRead} of ${bytes} bytes at byte ${at})`);
    values.set(decodeSamples(raw, 0, count, layout.type, layout.littleEndian));
    return values;
  };
}

async function spoolSamples(fh: FileHandle, layout: SampleLayout, geometry: Omit<Volume, 'data' | 'shape'>, dir: string | undefined): Promise<SpooledVolume> {
  const [c, d, h, w] = layout.shape;
  const writer = await spoolVolume({ shape: layout.shape, ...(dir !== undefined ? { dir } : {}) });
  try {
    const plane = sampleReader(fh, layout, h * w, geometry.source.file);
    for (let ci = 0; ci < c; ci++) for (let z = 0; z < d; z++) await writer.writePlane(ci, z, await plane(ci * d + z));
    return writer.finish(geometry);
  } catch (err) {
    await writer.abort();
    throw err;
  }
}

async function headOf(fh: FileHandle, size: number): Promise<Uint8Array> {
  const head = Buffer.alloc(Math.min(size, NPY_HEAD_BYTES));
  const { bytesRead } = await fh.read(head, 0, head.byteLength, 0);
  return head.subarray(0, bytesRead);
}

/**
 * A `.npy` in Fortran order, one channel (as NumPy saves an array nibabel gave): the first index
 * runs fastest, so the file holds `W` slices of `D x H` samples, the layout of a sagittal NIfTI,
 * and its canonical planes are gathered from a scratch file (`spoolGrid`) a block at a time.
 */
async function spoolFortranSamples(fh: FileHandle, layout: SampleLayout, geometry: Omit<Volume, 'data' | 'shape'>, dir: string | undefined): Promise<SpooledVolume> {
  const [, d, h, w] = layout.shape;
  const [sd, sh, sw] = geometry.spacing;
  // file (i, j, k) = (d, h, w): i along z, j along y, k along x
  const affine = [0, 0, sw, 0, 0, sh, 0, 0, sd, 0, 0, 0, 0, 0, 0, 1];
  const grid = canonicalGrid({ dims: [d, h, w], channels: 1, affine, source: geometry.source });
  const spool = await spoolGrid({ grid, dims: [d, h, w], ...(dir !== undefined ? { dir } : {}) });
  try {
    const slice = sampleReader(fh, layout, d * h, geometry.source.file);
    for (let k = 0; k < w; k++) await spool.put(0, k, await slice(k));
    // the geometry decodeNpy gives (no file grid to undo: the array has no orientation)
    return Object.assign(await spool.finish(), geometry);
  } catch (err) {
    await spool.abort();
    throw err;
  }
}

/**
 * A `.npy` kept on disk; `undefined` for a file that is no `.npy`, and for one in Fortran order
 * with more than one channel (channel-interleaved samples: `decodeNpy` reads it whole then).
 */
export async function spoolNpyFile(path: string, params: DecodeNpyParams & { dir?: string } = {}): Promise<SpooledVolume | undefined> {
  const file = params.file ?? path;
  const spacing = checkSpacing(params.spacing ?? [1, 1, 1]);
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const head = await headOf(fh, size);
    if (!looksLikeNpy(head)) return undefined;
    const { header, shape, channels } = npyLayout(head, size, { ...params, file });
    const geometry = { spacing, affine: spacingAffine(spacing), source: { format: 'npy' as const, file, channels, warnings: [] } };
    const layout = { shape, dataOffset: header.dataOffset, type: header.type, littleEndian: header.littleEndian };
    if (!header.fortranOrder || shape.filter((n) => n > 1).length <= 1) return await spoolSamples(fh, layout, geometry, params.dir);
    if (shape[0] !== 1) return undefined;
    return await spoolFortranSamples(fh, layout, geometry, params.dir);
  } finally {
    await fh.close();
  }
}

/** A raw file of the caller's layout kept on disk. */
export async function spoolRawFile(path: string, params: DecodeRawParams & { dir?: string }): Promise<SpooledVolume> {
  const file = params.file ?? path;
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const layout = rawLayout(size, { ...params, file });
    const spacing = checkSpacing(params.spacing ?? [1, 1, 1]);
    const geometry = { spacing, affine: spacingAffine(spacing), source: { format: 'raw' as const, file, channels: layout.channels, warnings: [] } };
    return await spoolSamples(fh, { shape: layout.shape, dataOffset: layout.offset, type: layout.dtype, littleEndian: layout.littleEndian }, geometry, params.dir);
  } finally {
    await fh.close();
  }
}
