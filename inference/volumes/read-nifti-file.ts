/**
 * A NIfTI file (`.nii` or `.nii.gz`) read from disk as a stream, decoded a slice at a time as it
 * is read (and inflated): `readNiftiFile` puts each slice in its canonical places, so that
 * neither the file's bytes nor what they inflate to are ever held whole (a 512x512x300 int16 CT
 * holds its 315 MB float32 volume, one slice and a megabyte of stream, not the 69 MB file and its
 * 157 MB of samples besides); `spoolNiftiFile` hands each slice to a volume on disk instead. The
 * same checks, budgets (`unpackedEntryBytes`, `compressionRatio`), values and messages as
 * `decodeNifti`; RGB images, whose samples interleave their channels, are decoded whole by it.
 */
import { open } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { InvalidArgumentError } from '../../converters/errors.js';
import { readFileBytes } from '../../converters/io.js';
import { VolumeFormatError } from './errors.js';
import { canonicalGrid, type CanonicalGrid } from './grid-volume.js';
import { checkInflated, looksLikeGzip } from './gunzip.js';
import { decodeNifti, looksLikeNifti, parseNiftiHeader, planNifti, type DecodeNiftiParams, type NiftiPlan } from './read-nifti.js';
import { decodeSamples, SAMPLE_BYTES } from './samples.js';
import type { SpooledVolume } from './plane-source.js';
import { spoolGrid, spoolWhole, type GridSpool } from './spool-grid.js';
import { VOLUME_LIMITS, type Volume } from './volume.js';

/** Does the file start like a NIfTI, plain or gzipped? (`readVolume` reads any gzip as NIfTI.) */
export async function looksLikeNiftiFile(path: string): Promise<boolean> {
  const handle = await open(path, 'r');
  try {
    const head = new Uint8Array(4);
    const { bytesRead } = await handle.read(head, 0, 4, 0);
    return looksLikeGzip(head.subarray(0, bytesRead)) || looksLikeNifti(head.subarray(0, bytesRead));
  } finally {
    await handle.close();
  }
}

/** What `streamNifti` found: the header's plan and the canonical grid, or a file to decode whole. */
type Streamed = { kind: 'voxels'; plan: NiftiPlan; grid: CanonicalGrid } | { kind: 'interleaved' } | { kind: 'declined' };

/**
 * Stream a NIfTI file's voxel bytes, in file order, to the feeder `begin` makes once the header
 * is read and checked (budgets, truncation, the gzip's ratio); `begin` may decline the voxels
 * (nothing more is read). RGB images (`interleaved`) are not streamed: the caller decodes them
 * whole.
 */
async function streamNifti(
  path: string,
  params: DecodeNiftiParams,
  begin: (plan: NiftiPlan, grid: CanonicalGrid, littleEndian: boolean) => ((bytes: Uint8Array) => void | Promise<void>) | undefined,
): Promise<Streamed> {
  const file = params.file ?? path;
  const maxVoxels = params.maxVoxels ?? VOLUME_LIMITS.maxVoxels;
  if (!(maxVoxels > 0)) throw new InvalidArgumentError(`'maxVoxels' must be positive, got ${maxVoxels}`);
  const fail = (msg: string): never => {
    throw new VolumeFormatError(`${file}: ${msg}`, { file });
  };
  const handle = await open(path, 'r');
  let raw: Readable;
  let packed: number;
  let gz: boolean;
  try {
    packed = (await handle.stat()).size;
    const magic = new Uint8Array(2);
    await handle.read(magic, 0, 2, 0);
    gz = looksLikeGzip(magic);
    raw = createReadStream('', { fd: handle, start: 0, highWaterMark: 1 << 20 });
  } catch (err) {
    await handle.close();
    throw err;
  }
  const source: Readable = gz ? raw.pipe(createGunzip({ chunkSize: 1 << 20 })) : raw;
  if (gz) raw.on('error', (err) => source.destroy(err));
  let head: Buffer[] = [];
  let headLength = 0;
  let plan: NiftiPlan | undefined;
  let grid: CanonicalGrid | undefined;
  let feed: ((bytes: Uint8Array) => void | Promise<void>) | undefined;
  let pos = 0;
  try {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      let bytes: Uint8Array = chunk;
      if (plan === undefined) {
        head.push(chunk);
        headLength += chunk.byteLength;
        const joined = Buffer.concat(head, headLength);
        if (joined.byteLength < 4) continue;
        if (!looksLikeNifti(joined)) parseNiftiHeader(joined, file);
        const v = new DataView(joined.buffer, joined.byteOffset, joined.byteLength);
        if (joined.byteLength < (v.getInt32(0, true) === 540 || v.getInt32(0, false) === 540 ? 540 : 348)) continue;
        const h = parseNiftiHeader(joined, file);
        plan = planNifti(h, file, maxVoxels);
        const { lay } = plan;
        if (lay.components > 1) break;
        if (gz) checkInflated(lay.end, packed, file, params.budgets);
        else if (lay.start > packed) fail(`vox_offset ${lay.start} lies beyond the end of the file (${packed} bytes)`);
        else if (lay.end > packed) fail(`voxel data [${lay.start}, ${lay.end}) runs past the end of the file (${packed} bytes; truncated)`);
        grid = canonicalGrid(plan.grid);
        feed = begin(plan, grid, h.littleEndian);
        if (feed === undefined) return { kind: 'declined' };
        bytes = joined;
        head = [];
      }
      const { start, end } = plan.lay;
      const from = Math.max(0, start - pos);
      const to = Math.min(bytes.byteLength, end - pos);
      if (from < to) await feed!(bytes.subarray(from, to));
      pos += bytes.byteLength;
      if (pos >= end) break;
    }
  } catch (err) {
    if (err instanceof Error && 'code' in err && String((err as { code: unknown }).code).startsWith('Z_')) fail(`gzip stream is corrupt (${err.message})`);
    throw err;
  } finally {
    source.destroy();
    raw.destroy();
  }
  if (plan === undefined) {
    if (gz) fail(`gzip stream ends after ${headLength} bytes, before the header is complete`);
    parseNiftiHeader(Buffer.concat(head, headLength), file);
    return fail(`file is ${headLength} bytes, shorter than its header (truncated)`);
  }
  if (plan.lay.components > 1) return { kind: 'interleaved' };
  if (pos < plan.lay.end) fail(gz ? `gzip stream inflates to ${pos} bytes, fewer than the ${plan.lay.end} the header implies (truncated)` : `voxel data [${plan.lay.start}, ${plan.lay.end}) runs past the end of the file (${pos} bytes; truncated)`);
  return { kind: 'voxels', plan, grid: grid! };
}

/** Read a `.nii` or `.nii.gz` file into a canonical volume (see the module comment). */
export async function readNiftiFile(path: string, params: DecodeNiftiParams = {}): Promise<Volume> {
  let out: Float32Array | undefined;
  const streamed = await streamNifti(path, params, (plan, g, littleEndian) => {
    const [ni, nj, nk] = plan.lay.dims;
    const per = ni * nj * nk;
    const [s0, s1, s2] = g.steps;
    const volume = (out = new Float32Array(plan.lay.channels * per));
    // each slice, as it is decoded, into its canonical places
    return sliceFeeder(plan, littleEndian, async (c, k, slice) => {
      for (let j = 0, t = 0; j < nj; j++) {
        let dst = c * per + g.start + j * s1 + k * s2;
        for (let i = 0; i < ni; i++, t++, dst += s0) volume[dst] = slice[t]!;
      }
    });
  });
  if (streamed.kind !== 'voxels') return decodeNifti(await readFileBytes(path), { ...params, file: params.file ?? path });
  return streamed.grid.volume(out!);
}

/** Parameters of `spoolNiftiFile`. */
export interface SpoolNiftiParams extends DecodeNiftiParams {
  /** The folder of the spool files (see `spoolVolume`). @default os.tmpdir() */
  dir?: string;
  /** Most bytes of canonical planes gathered at once from a file whose slices are not axial (`spoolGrid`). @default SPOOL_BLOCK_BYTES (64 MiB) */
  blockBytes?: number;
}

/**
 * Read a `.nii` or `.nii.gz` file into a volume on disk (`spoolVolume`), holding at most one
 * file slice and a bounded block of planes, whatever the volume's size: the file is decoded one
 * slice (`k`) at a time and each slice handed to `spoolGrid` as it arrives. RGB images, whose
 * samples interleave their channels, are read whole (`decodeNifti`). The same values as
 * `readNiftiFile`, bit for bit.
 */
export async function spoolNiftiFile(path: string, params: SpoolNiftiParams = {}): Promise<SpooledVolume> {
  let spool: GridSpool | undefined;
  try {
    const streamed = await streamNifti(path, params, (plan, grid, littleEndian) =>
      sliceFeeder(plan, littleEndian, async (c, k, slice) => {
        spool ??= await spoolGrid({ grid, dims: plan.lay.dims, dir: params.dir, blockBytes: params.blockBytes });
        await spool.put(c, k, slice);
      }),
    );
    if (streamed.kind === 'voxels') return await spool!.finish();
    const volume = await readNiftiFile(path, params);
    return await spoolWhole(volume, params.dir);
  } catch (err) {
    await spool?.abort();
    throw err;
  }
}

/**
 * Collects a file's samples one slice (`k`) at a time, decodes and scales them, and hands each
 * slice over (`ni x nj` float32, i fastest; valid during the call), channel by channel.
 */
function sliceFeeder(plan: NiftiPlan, littleEndian: boolean, put: (c: number, k: number, slice: Float32Array) => Promise<void>): (bytes: Uint8Array) => Promise<void> {
  const { lay, slope, inter } = plan;
  const [ni, nj, nk] = lay.dims;
  const size = SAMPLE_BYTES[lay.type];
  const scaled = slope !== 1 || inter !== 0;
  const bytesIn = new Uint8Array(ni * nj * size);
  const slice = new Float32Array(ni * nj);
  let filled = 0;
  let k = 0;
  let c = 0;
  return async (bytes) => {
    let o = 0;
    while (o < bytes.byteLength) {
      const m = Math.min(bytesIn.byteLength - filled, bytes.byteLength - o);
      bytesIn.set(bytes.subarray(o, o + m), filled);
      filled += m;
      o += m;
      if (filled < bytesIn.byteLength) break;
      const values = decodeSamples(bytesIn, 0, ni * nj, lay.type, littleEndian);
      for (let t = 0; t < slice.length; t++) slice[t] = scaled ? values[t]! * slope + inter : values[t]!;
      await put(c, k, slice);
      filled = 0;
      if (++k === nk) {
        k = 0;
        c++;
      }
    }
  };
}
