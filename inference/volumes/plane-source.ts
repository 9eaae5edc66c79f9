/**
 * Volumes read a plane at a time, for inputs too large to hold: a `PlaneVolume` has a volume's
 * geometry and shape but no `data`; its planes are read on demand, in any order, each `H x W`
 * float32 of one channel. Sliding windows read them in order of `d` through a ring of a
 * window's depth (`slidingWindow`), so the input is never held whole.
 *
 * `spoolVolume` keeps a volume's planes in a file of its own (float32, the canonical layout),
 * deleted from the folder as soon as it is opened: only its descriptor refers to it, so nothing
 * is left behind when the process ends, however it ends. It counts, as the planes are written,
 * what the preprocessing asks of a whole volume: the least value, the voxels that are not
 * finite and the first of them.
 */
import { randomBytes } from 'node:crypto';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError } from '../../converters/errors.js';
import type { Volume, VolumeArray } from './volume.js';

/** A volume's planes, read on demand: `[C, D, H, W]`, plane `(c, z)` is `H x W` float32. */
export interface PlaneSource {
  readonly shape: readonly [number, number, number, number];
  /** Copy plane `z` of channel `c` into `into` from `at` (`H x W` values). */
  readPlane(c: number, z: number, into: Float32Array, at: number): Promise<void>;
}

/** A volume whose planes are read on demand: a `Volume`'s geometry without its `data`. */
export type PlaneVolume = Omit<Volume, 'data'> & PlaneSource;

/** Facts about a whole volume, counted as its planes were written. */
export interface SpoolStats {
  /** The least finite value (`Infinity` when there is none). */
  readonly min: number;
  /** Voxels that are NaN or infinite. */
  readonly nonFinite: number;
  /** The first of them in C order (`[c, d, h, w]` flattened) and its value; absent when there is none. */
  readonly firstNonFinite?: { readonly index: number; readonly value: number };
}

/** A volume kept on disk (see the module comment). `close` releases its file; reads after it fail. */
export interface SpooledVolume extends PlaneVolume {
  readonly spool: SpoolStats & { readonly bytes: number };
  close(): Promise<void>;
}

/** Does a volume keep its planes on disk? */
export function isSpooled(v: Volume | PlaneVolume): v is SpooledVolume {
  return 'spool' in v && !('data' in v);
}

/** Is this a volume array in memory (as opposed to planes read on demand)? */
export function inMemory(v: VolumeArray | PlaneSource): v is VolumeArray {
  return 'data' in v;
}

/** A volume array as a plane source (its planes copied out of `data`). */
export function memoryPlanes(v: VolumeArray): PlaneSource {
  const [, d, h, w] = v.shape;
  const n = h * w;
  return {
    shape: v.shape,
    readPlane: async (c, z, into, at) => {
      into.set(v.data.subarray((c * d + z) * n, (c * d + z + 1) * n), at);
    },
  };
}

/** Read every plane into one array: the whole volume, for the steps that need it in memory. */
export async function readAllPlanes(source: PlaneSource): Promise<Float32Array> {
  const [c, d, h, w] = source.shape;
  const out = new Float32Array(c * d * h * w);
  for (let ci = 0; ci < c; ci++) for (let z = 0; z < d; z++) await source.readPlane(ci, z, out, (ci * d + z) * h * w);
  return out;
}

/** A volume's geometry and provenance: everything but its voxels and shape. */
export function geometryOf(v: Omit<Volume, 'data'>): Omit<Volume, 'data' | 'shape'> {
  return { spacing: v.spacing, affine: v.affine, source: v.source, ...(v.modality !== undefined ? { modality: v.modality } : {}) };
}

/** A plane volume made whole: the `Volume` it stands for. */
export async function loadPlaneVolume(v: PlaneVolume): Promise<Volume> {
  return { ...geometryOf(v), shape: v.shape, data: await readAllPlanes(v) };
}

/**
 * The volume in memory, for the steps that draw it (previews): a spooled one is read whole on
 * the first call and kept for the next; one in memory is itself.
 */
export function wholeVolume(v: Volume | SpooledVolume): () => Promise<Volume> {
  let loaded: Promise<Volume> | undefined;
  return () => (loaded ??= isSpooled(v) ? loadPlaneVolume(v) : Promise.resolve(v as Volume));
}

/** Parameters of `spoolVolume`. */
export interface SpoolVolumeParams {
  /** `[C, D, H, W]`. */
  shape: readonly [number, number, number, number];
  /** The folder the file is made in (and at once removed from). @default os.tmpdir() */
  dir?: string;
}

/** Writes a spooled volume's planes, then gives the volume. */
export interface SpoolWriter {
  /** Write plane `(c, z)`: `H x W` values. Each plane is written once, in any order. */
  writePlane(c: number, z: number, plane: Float32Array): Promise<void>;
  /** The volume, with this geometry, once every plane has been written. */
  finish(geometry: Omit<Volume, 'data' | 'shape'>): SpooledVolume;
  /** Give up: release the file. */
  abort(): Promise<void>;
}

/** Start a volume on disk (see the module comment). */
export async function spoolVolume(p: SpoolVolumeParams): Promise<SpoolWriter> {
  const shape = p.shape;
  if (shape.length !== 4 || !shape.every((n) => Number.isSafeInteger(n) && n > 0)) throw new InvalidArgumentError(`'shape' must be [C, D, H, W] of positive integers, got [${shape.join(', ')}]`);
  const [c, d, h, w] = shape;
  const n = h * w;
  const path = join(p.dir ?? tmpdir(), `acs-hub-volume-${randomBytes(8).toString('hex')}.f32`);
  const handle: FileHandle = await open(path, 'wx+', 0o600);
  await unlink(path).catch(async (err: unknown) => {
    await handle.close();
    throw err;
  });
  const written = new Uint8Array(c * d);
  let min = Infinity;
  let nonFinite = 0;
  let first: { index: number; value: number } | undefined;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await handle.close();
  };
  const bytesOf = (a: Float32Array, at: number, count: number) => new Uint8Array(a.buffer, a.byteOffset + 4 * at, 4 * count);
  const plane = (ci: number, z: number): number => {
    if (!(Number.isSafeInteger(ci) && ci >= 0 && ci < c && Number.isSafeInteger(z) && z >= 0 && z < d)) throw new RangeError(`plane (${ci}, ${z}) is outside [0, ${c}) x [0, ${d})`);
    return ci * d + z;
  };
  return {
    async writePlane(ci, z, values) {
      const i = plane(ci, z);
      if (values.length !== n) throw new RangeError(`a plane holds ${n} values, got ${values.length}`);
      if (written[i]) throw new RangeError(`plane (${ci}, ${z}) is written twice`);
      for (let t = 0; t < n; t++) {
        const v = values[t]!;
        if (Number.isFinite(v)) {
          if (v < min) min = v;
        } else {
          nonFinite++;
          if (first === undefined || i * n + t < first.index) first = { index: i * n + t, value: v };
        }
      }
      await handle.write(bytesOf(values, 0, n), 0, 4 * n, 4 * i * n);
      written[i] = 1;
    },
    finish(geometry) {
      const missing = written.indexOf(0);
      if (missing >= 0) throw new RangeError(`plane (${Math.floor(missing / d)}, ${missing % d}) was never written`);
      const spool = { bytes: 4 * c * d * n, min, nonFinite, ...(first ? { firstNonFinite: first } : {}) };
      return {
        ...geometry,
        shape,
        spool,
        async readPlane(ci, z, into, at) {
          const i = plane(ci, z);
          if (closed) throw new Error('the spooled volume is closed');
          const { bytesRead } = await handle.read(bytesOf(into, at, n), 0, 4 * n, 4 * i * n);
          if (bytesRead !== 4 * n) throw new Error(`the spooled volume's plane (${ci}, ${z}) read ${bytesRead} of ${4 * n} bytes`);
        },
        close,
      };
    },
    abort: close,
  };
}
