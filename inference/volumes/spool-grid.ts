/**
 * A volume on disk (`spoolVolume`) written from a file's slices in the file's own order, for the
 * readers that decode a slice at a time (NIfTI, DICOM): when the slices are the canonical axial
 * planes (the file's third axis runs along `d`, as a CT's does), each is put in canonical order
 * and written as it comes, holding one plane. Otherwise (a sagittal or coronal acquisition) the
 * slices go first to a scratch file in the file's order, and the canonical planes are gathered
 * from it a block of at most `blockBytes` at a time. Either way the volume is never held whole.
 */
import type { CanonicalGrid } from './grid-volume.js';
import { geometryOf, spoolVolume, type SpooledVolume, type SpoolWriter } from './plane-source.js';
import type { Volume } from './volume.js';

/** The default most bytes of canonical planes gathered at once (`SpoolGridParams.blockBytes`). */
export const SPOOL_BLOCK_BYTES = 64 * 1024 * 1024;

/** Parameters of `spoolGrid`. */
export interface SpoolGridParams {
  /** The canonical layout of the file's grid. */
  grid: CanonicalGrid;
  /** The file's dims `[ni, nj, nk]`: each slice is `ni x nj` (i fastest), `nk` slices a channel. */
  dims: readonly [number, number, number];
  /** The folder of the spool files. @default os.tmpdir() */
  dir?: string;
  /** Most bytes of canonical planes gathered at once from slices that are not axial. @default SPOOL_BLOCK_BYTES */
  blockBytes?: number;
}

/** Takes a file's slices, then gives the volume. */
export interface GridSpool {
  /** Slice `k` of channel `c`: `ni x nj` values, read during the call only. Each slice once. */
  put(c: number, k: number, slice: Float32Array): Promise<void>;
  /** The volume, once every slice is in. */
  finish(): Promise<SpooledVolume>;
  /** Give up: release the files. */
  abort(): Promise<void>;
}

/** Start a volume on disk for a file's slices (see the module comment). */
export async function spoolGrid(p: SpoolGridParams): Promise<GridSpool> {
  const g = p.grid;
  const [ni, nj, nk] = p.dims;
  const axial = g.grid.axes[2] === 2;
  const geometry = geometryOf(g.volume(new Float32Array(0)));
  // axial: the volume itself; else the scratch file of slices in the file's order, [C, nk, nj, ni]
  const first = await spoolVolume({ shape: axial ? g.shape : [g.shape[0], nk, nj, ni], dir: p.dir });
  const plane = new Float32Array(axial ? g.shape[2] * g.shape[3] : 0);
  let writer: SpoolWriter | undefined;
  return {
    put: (c, k, slice) => (axial ? first.writePlane(c, axialPlane(g, k), toCanonicalPlane(g, slice, plane)) : first.writePlane(c, k, slice)),
    async finish() {
      if (axial) return first.finish(geometry);
      const scratch = first.finish(geometry);
      try {
        writer = await spoolVolume({ shape: g.shape, dir: p.dir });
        await gatherPlanes(g, p.dims, scratch, writer, p.blockBytes ?? SPOOL_BLOCK_BYTES);
        return writer.finish(geometry);
      } catch (err) {
        await writer?.abort();
        throw err;
      } finally {
        await scratch.close();
      }
    },
    async abort() {
      await first.abort();
      await writer?.abort();
    },
  };
}

/** A volume already in memory, written to disk plane by plane. */
export async function spoolWhole(volume: Volume, dir?: string): Promise<SpooledVolume> {
  const writer = await spoolVolume({ shape: volume.shape, dir });
  try {
    const [c, d, h, w] = volume.shape;
    for (let ci = 0; ci < c; ci++) for (let z = 0; z < d; z++) await writer.writePlane(ci, z, volume.data.subarray((ci * d + z) * h * w, (ci * d + z + 1) * h * w));
    return writer.finish(geometryOf(volume));
  } catch (err) {
    await writer.abort();
    throw err;
  }
}

/** The canonical plane file slice `k` is, for a grid whose `k` axis is the canonical `d` axis. */
function axialPlane(g: CanonicalGrid, k: number): number {
  const n = g.shape[2] * g.shape[3];
  const local = g.start % n;
  return (g.start - local) / n + k * (g.steps[2] / n);
}

/** A file slice (`ni x nj`, i fastest) put in the canonical order of its plane, for an axial grid. */
function toCanonicalPlane(g: CanonicalGrid, slice: Float32Array, plane: Float32Array): Float32Array {
  const n = plane.length;
  const [s0, s1] = g.steps;
  const [ni, nj] = g.grid.dims;
  const local = g.start % n;
  for (let j = 0, t = 0; j < nj; j++) {
    let dst = local + j * s1;
    for (let i = 0; i < ni; i++, t++, dst += s0) plane[dst] = slice[t]!;
  }
  return plane;
}

/**
 * Gather the canonical planes of a grid whose `d` axis is the file's `i` or `j` axis from its
 * slices (`scratch`, `[C, nk, nj, ni]` in file order), a block of planes at a time: every slice
 * is read for each block and each of its voxels in the block put in its canonical place.
 */
async function gatherPlanes(g: CanonicalGrid, dims: readonly [number, number, number], scratch: SpooledVolume, writer: SpoolWriter, blockBytes: number): Promise<void> {
  const [c, d, h, w] = g.shape;
  const n = h * w;
  const [ni, nj, nk] = dims;
  const [s0, s1, s2] = g.steps;
  const axis = g.grid.axes[2];
  const block = Math.max(1, Math.min(d, Math.floor(blockBytes / (4 * n))));
  const planes = new Float32Array(block * n);
  const slice = new Float32Array(ni * nj);
  for (let ci = 0; ci < c; ci++) {
    for (let d0 = 0; d0 < d; d0 += block) {
      const d1 = Math.min(d, d0 + block);
      for (let k = 0; k < nk; k++) {
        await scratch.readPlane(ci, k, slice, 0);
        for (let j = 0; j < nj; j++) {
          let dst = g.start + j * s1 + k * s2;
          if (axis === 1) {
            const z = Math.floor(dst / n);
            if (z < d0 || z >= d1) continue;
          }
          for (let i = 0, t = j * ni; i < ni; i++, t++, dst += s0) {
            const z = Math.floor(dst / n);
            if (z >= d0 && z < d1) planes[(z - d0) * n + (dst - z * n)] = slice[t]!;
          }
        }
      }
      for (let z = d0; z < d1; z++) await writer.writePlane(ci, z, planes.subarray((z - d0) * n, (z - d0 + 1) * n));
    }
  }
}
