/**
 * Resample a volume to a target size or spacing: trilinear for images, nearest for label
 * maps. The convention is PyTorch's `interpolate(..., align_corners=False)` (and
 * `mode='nearest-exact'` for nearest): voxel *edges* of the old and new grids coincide, so
 * output voxel `o` samples input position `(o + 0.5) * n_in / n_out - 0.5` (clamped at 0),
 * and the field of view, hence the world position of the volume, is kept; the affine and
 * spacing are updated to match.
 */
import type { Budgets } from '../../converters/budgets.js';
import { InvalidArgumentError } from '../../converters/errors.js';
import type { Vec3 } from '../volumes/volume.js';
import { geometryOf, type PlaneVolume } from '../volumes/plane-source.js';
import { checkOutputVoxels, checkSize, checkVolume, regrid, regridGeometry, type MaybeGeometry } from './geometry.js';

/** Options of `resample`; give exactly one of `size` and `spacing`. */
export interface ResampleParams<V extends MaybeGeometry> {
  volume: V;
  /** Target size `[D, H, W]`. */
  size?: readonly number[];
  /**
   * Target spacing `[sd, sh, sw]` in mm (needs `volume.spacing`): the size becomes
   * `round(n * spacing_in / spacing_out)` and the spacing actually reached is
   * `spacing_in * n_in / n_out`, which may differ slightly from the target.
   */
  spacing?: Vec3;
  /** `trilinear` for intensities, `nearest` for label maps. @default 'trilinear' */
  mode?: 'trilinear' | 'nearest';
  /** Budgets; the output (all channels) must fit `outputVoxels`. @default DEFAULT_BUDGETS */
  budgets?: Partial<Budgets>;
}

interface Taps {
  i0: Int32Array;
  i1: Int32Array;
  w1: Float64Array;
}

function linearTaps(nIn: number, nOut: number): Taps {
  const scale = nIn / nOut;
  const i0 = new Int32Array(nOut);
  const i1 = new Int32Array(nOut);
  const w1 = new Float64Array(nOut);
  for (let o = 0; o < nOut; o++) {
    const src = Math.max((o + 0.5) * scale - 0.5, 0);
    const a = Math.min(Math.floor(src), nIn - 1);
    i0[o] = a;
    i1[o] = a < nIn - 1 ? a + 1 : a;
    w1[o] = src - a;
  }
  return { i0, i1, w1 };
}

function nearestIndex(nIn: number, nOut: number): Int32Array {
  const scale = nIn / nOut;
  const idx = new Int32Array(nOut);
  for (let o = 0; o < nOut; o++) idx[o] = Math.min(Math.floor((o + 0.5) * scale), nIn - 1);
  return idx;
}

/**
 * The `[D, H, W]` a resampling to `size` or `spacing` gives (see `ResampleParams`), checked
 * but not yet held against any budget.
 */
export function resampleSize(volume: Pick<MaybeGeometry, 'shape' | 'spacing'>, target: { size?: readonly number[]; spacing?: readonly number[] }): Vec3 {
  if ((target.size === undefined) === (target.spacing === undefined)) throw new InvalidArgumentError("give exactly one of 'size' and 'spacing'");
  if (target.size !== undefined) return checkSize(target.size, 'size');
  const sp = target.spacing!;
  const have = volume.spacing;
  if (have === undefined) throw new InvalidArgumentError("'spacing' needs a volume that has a spacing");
  if (sp.length !== 3 || !sp.every((s) => Number.isFinite(s) && s > 0)) throw new InvalidArgumentError(`'spacing' must be three positive numbers, got [${sp.join(', ')}]`);
  if (!have.every((s) => Number.isFinite(s) && s > 0)) throw new InvalidArgumentError(`the volume's spacing [${have.join(', ')}] is not three positive numbers: it cannot be resampled to a spacing`);
  return [0, 1, 2].map((a) => Math.max(1, Math.round((volume.shape[a + 1]! * have[a]!) / sp[a]!))) as Vec3;
}

/** Resample to a size or spacing; returns a new volume with updated affine and spacing. */
export function resample<V extends MaybeGeometry>(params: ResampleParams<V>): V {
  const { volume } = params;
  checkVolume(volume);
  const [c, d, h, w] = volume.shape;
  const size = resampleSize(volume, params);
  checkOutputVoxels([c, ...size], `resampling [${volume.shape.join(', ')}] to ${size.join('x')}`, params.budgets);
  const mode = params.mode ?? 'trilinear';
  if (mode !== 'trilinear' && mode !== 'nearest') throw new InvalidArgumentError(`'mode' must be 'trilinear' or 'nearest', got '${String(mode)}'`);
  const [od, oh, ow] = size;
  const out = new Float32Array(c * od * oh * ow);
  const src = volume.data;
  const kernel = planeKernel([d, h, w], size, mode);
  const n = h * w;
  for (let ci = 0; ci < c; ci++) {
    for (let z = 0; z < od; z++) {
      const [z0, z1] = kernel.sources(z);
      kernel.plane(z, src, (ci * d + z0) * n, src, (ci * d + z1) * n, out, (ci * od + z) * oh * ow);
    }
  }
  return regrid(volume, out, [c, od, oh, ow], ...gridChange([d, h, w], size));
}

/** The scale and offset (`regrid`) of a resampling from `from` to `to`, `[D, H, W]` each. */
function gridChange(from: Vec3, to: Vec3): [Vec3, Vec3] {
  const scale: Vec3 = [from[0] / to[0], from[1] / to[1], from[2] / to[2]];
  return [scale, [0.5 * scale[0] - 0.5, 0.5 * scale[1] - 0.5, 0.5 * scale[2] - 0.5]];
}

/**
 * One output plane of a resampling from `[d, h, w]` to `[od, oh, ow]`: `sources(z)` are the two
 * input planes output plane `z` is made from (the same one twice for `nearest`), `plane` makes it.
 */
function planeKernel([d, h, w]: Vec3, [od, oh, ow]: Vec3, mode: 'trilinear' | 'nearest') {
  if (mode === 'nearest') {
    const nd = nearestIndex(d, od);
    const nh = nearestIndex(h, oh);
    const nw = nearestIndex(w, ow);
    return {
      sources: (z: number): [number, number] => [nd[z]!, nd[z]!],
      plane(_z: number, src: Float32Array, at: number, _src1: Float32Array, _at1: number, out: Float32Array, o: number): void {
        for (let y = 0; y < oh; y++) {
          const row = at + nh[y]! * w;
          for (let x = 0; x < ow; x++) out[o++] = src[row + nw[x]!]!;
        }
      },
    };
  }
  const td = linearTaps(d, od);
  const th = linearTaps(h, oh);
  const tw = linearTaps(w, ow);
  return {
    sources: (z: number): [number, number] => [td.i0[z]!, td.i1[z]!],
    plane(z: number, s0: Float32Array, z0: number, s1: Float32Array, z1: number, out: Float32Array, o: number): void {
      const fz = td.w1[z]!;
      for (let y = 0; y < oh; y++) {
        const y0 = th.i0[y]! * w;
        const y1 = th.i1[y]! * w;
        const fy = th.w1[y]!;
        for (let x = 0; x < ow; x++) {
          const x0 = tw.i0[x]!;
          const x1 = tw.i1[x]!;
          const fx = tw.w1[x]!;
          const c00 = s0[z0 + y0 + x0]! * (1 - fx) + s0[z0 + y0 + x1]! * fx;
          const c01 = s0[z0 + y1 + x0]! * (1 - fx) + s0[z0 + y1 + x1]! * fx;
          const c10 = s1[z1 + y0 + x0]! * (1 - fx) + s1[z1 + y0 + x1]! * fx;
          const c11 = s1[z1 + y1 + x0]! * (1 - fx) + s1[z1 + y1 + x1]! * fx;
          out[o++] = (c00 * (1 - fy) + c01 * fy) * (1 - fz) + (c10 * (1 - fy) + c11 * fy) * fz;
        }
      }
    },
  };
}

/** Options of `resamplePlanes`; give exactly one of `size` and `spacing`. */
export interface ResamplePlanesParams {
  volume: PlaneVolume;
  size?: readonly number[];
  spacing?: Vec3;
  /** @default 'trilinear' */
  mode?: 'trilinear' | 'nearest';
}

/**
 * `resample` of a volume read a plane at a time, itself read a plane at a time: each output
 * plane is made, when it is read, from the (at most two) input planes it samples, the last two
 * kept for the next. The same values as `resample`, bit for bit; nothing is held but those
 * planes, so the resampled volume is never made whole.
 */
export function resamplePlanes(params: ResamplePlanesParams): PlaneVolume {
  const { volume } = params;
  const [c, d, h, w] = volume.shape;
  const size = resampleSize(volume, params);
  const mode = params.mode ?? 'trilinear';
  if (mode !== 'trilinear' && mode !== 'nearest') throw new InvalidArgumentError(`'mode' must be 'trilinear' or 'nearest', got '${String(mode)}'`);
  const kernel = planeKernel([d, h, w], size, mode);
  const cache: { key: string; data: Float32Array }[] = [];
  const input = async (ci: number, z: number): Promise<Float32Array> => {
    const key = `${ci},${z}`;
    const hit = cache.find((e) => e.key === key);
    if (hit) return hit.data;
    const data = cache.length < 2 ? new Float32Array(h * w) : cache.shift()!.data;
    await volume.readPlane(ci, z, data, 0);
    cache.push({ key, data });
    return data;
  };
  const [scale, offset] = gridChange([d, h, w], size);
  return {
    ...geometryOf(volume),
    ...regridGeometry(volume, scale, offset),
    shape: [c, ...size],
    async readPlane(ci, z, into, at) {
      const [z0, z1] = kernel.sources(z);
      const a = await input(ci, z0);
      const b = await input(ci, z1);
      kernel.plane(z, a, 0, b, 0, into, at);
    },
  };
}
