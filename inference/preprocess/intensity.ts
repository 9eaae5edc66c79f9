/**
 * Intensity steps: CT windowing (clip to `[lo, hi]` Hounsfield units, then scale to
 * `[0, 1]`), min-max or percentile scaling (for MR and other unitless images), and
 * per-channel mean/std normalisation. All return a new volume; geometry is untouched.
 */
import { InvalidArgumentError } from '../../converters/errors.js';
import type { PlaneSource } from '../volumes/plane-source.js';
import type { VolumeArray } from '../volumes/volume.js';
import { checkVolume } from './geometry.js';

/** Common CT windows `[lo, hi]` in HU. */
export const CT_WINDOWS = {
  lung: [-1000, 400],
  mediastinum: [-160, 240],
  abdomen: [-150, 250],
  bone: [-500, 1300],
  brain: [0, 80],
} as const satisfies Record<string, readonly [number, number]>;

/** Options of `windowIntensity`. */
export interface WindowParams<V extends VolumeArray> {
  volume: V;
  /** `[lo, hi]` in the volume's units (HU for CT), or a name from `CT_WINDOWS`. @default 'lung' ([-1000, 400]) */
  window?: readonly [number, number] | keyof typeof CT_WINDOWS;
  /** Output range the window maps onto. @default [0, 1] */
  range?: readonly [number, number];
}

function checkRange(r: readonly number[], name: string): [number, number] {
  if (r.length !== 2 || !r.every(Number.isFinite) || !(r[1]! > r[0]!)) throw new InvalidArgumentError(`'${name}' must be [lo, hi] with lo < hi, got [${r.join(', ')}]`);
  return [r[0]!, r[1]!];
}

function mapLinear<V extends VolumeArray>(volume: V, los: number[], his: number[], range: [number, number]): V {
  const [c] = volume.shape;
  const per = volume.data.length / c;
  const out = new Float32Array(volume.data.length);
  for (let ci = 0; ci < c; ci++) {
    const lo = los[ci]!;
    const hi = his[ci]!;
    const k = hi > lo ? (range[1] - range[0]) / (hi - lo) : 0;
    for (let i = ci * per; i < (ci + 1) * per; i++) {
      const v = volume.data[i]!;
      const clipped = v < lo ? lo : v > hi ? hi : v;
      out[i] = range[0] + (clipped - lo) * k;
    }
  }
  return { ...volume, data: out };
}

/** The `[lo, hi]` of a window: a name from `CT_WINDOWS` or two numbers with lo < hi. */
export function windowBounds(window: readonly [number, number] | keyof typeof CT_WINDOWS): [number, number] {
  const win = typeof window === 'string' ? CT_WINDOWS[window] : window;
  if (win === undefined) throw new InvalidArgumentError(`'window' '${String(window)}' is not one of ${Object.keys(CT_WINDOWS).join(', ')}`);
  return checkRange(win, 'window');
}

/** Clip to a window and scale it linearly onto `range`. */
export function windowIntensity<V extends VolumeArray>(params: WindowParams<V>): V {
  checkVolume(params.volume);
  const [lo, hi] = windowBounds(params.window ?? 'lung');
  const c = params.volume.shape[0];
  return mapLinear(params.volume, Array<number>(c).fill(lo), Array<number>(c).fill(hi), checkRange(params.range ?? [0, 1], 'range'));
}

/** Options of `scaleIntensity`. */
export interface ScaleParams<V extends VolumeArray> {
  volume: V;
  /** Percentiles `[lo, hi]` (0-100) that map onto `range`; values outside are clipped. @default [0, 100] (min-max) */
  percentiles?: readonly [number, number];
  /** Output range. @default [0, 1] */
  range?: readonly [number, number];
  /** Compute the percentiles of each channel separately. @default true */
  perChannel?: boolean;
}

/** The `p`-th percentile (0-100, linear interpolation as NumPy's default) of sorted values. */
function percentile(sorted: Float32Array, p: number): number {
  const pos = (p / 100) * (sorted.length - 1);
  const a = Math.floor(pos);
  const b = Math.min(a + 1, sorted.length - 1);
  return sorted[a]! + (sorted[b]! - sorted[a]!) * (pos - a);
}

/**
 * The values at two percentiles `[lo, hi]` (0-100) of each channel (or of all channels together,
 * repeated for each), as `scaleIntensity` maps them; each sort takes a copy of its channel.
 */
export function percentileBounds(volume: VolumeArray, percentiles: readonly [number, number], perChannel = true): { lo: number[]; hi: number[] } {
  checkVolume(volume);
  const [plo, phi] = percentiles;
  if (!(plo >= 0 && phi <= 100 && plo < phi)) throw new InvalidArgumentError(`'percentiles' must satisfy 0 <= lo < hi <= 100, got [${plo}, ${phi}]`);
  const c = volume.shape[0];
  const groups = perChannel ? c : 1;
  const size = volume.data.length / groups;
  const los: number[] = [];
  const his: number[] = [];
  for (let g = 0; g < groups; g++) {
    const sorted = volume.data.slice(g * size, (g + 1) * size).sort();
    los.push(percentile(sorted, plo));
    his.push(percentile(sorted, phi));
  }
  return { lo: Array.from({ length: c }, (_, i) => los[groups === 1 ? 0 : i]!), hi: Array.from({ length: c }, (_, i) => his[groups === 1 ? 0 : i]!) };
}

/** The float32 bit pattern as an unsigned key in the order of the values (-0 before +0, as a sort puts them). */
function orderKey(bits: number): number {
  return bits & 0x80000000 ? ~bits >>> 0 : (bits | 0x80000000) >>> 0;
}

function keyValue(key: number): number {
  const bits = new Uint32Array([key & 0x80000000 ? (key & 0x7fffffff) >>> 0 : ~key >>> 0]);
  return new Float32Array(bits.buffer)[0]!;
}

/**
 * `percentileBounds` of a volume read a plane at a time, equal to it: the same order statistics,
 * found without sorting (or holding) the volume by two passes over its planes, the first counting
 * the values by the high 16 bits of their order key, the second, within the bins that hold the
 * ranks wanted, by the low 16. Holds one plane and two tables of 65536 counts per rank. The
 * volume must hold finite values only.
 */
export async function percentileBoundsOfPlanes(source: PlaneSource, percentiles: readonly [number, number], perChannel = true): Promise<{ lo: number[]; hi: number[] }> {
  const [plo, phi] = percentiles;
  if (!(plo >= 0 && phi <= 100 && plo < phi)) throw new InvalidArgumentError(`'percentiles' must satisfy 0 <= lo < hi <= 100, got [${plo}, ${phi}]`);
  const [c, d, h, w] = source.shape;
  const groups = perChannel ? c : 1;
  const plane = new Float32Array(h * w);
  const bits = new Uint32Array(plane.buffer);
  const each = async (g: number, visit: (key: number) => void): Promise<void> => {
    for (let ci = groups === 1 ? 0 : g; ci < (groups === 1 ? c : g + 1); ci++) {
      for (let z = 0; z < d; z++) {
        await source.readPlane(ci, z, plane, 0);
        for (let i = 0; i < bits.length; i++) visit(orderKey(bits[i]!));
      }
    }
  };
  const los: number[] = [];
  const his: number[] = [];
  for (let g = 0; g < groups; g++) {
    const n = (c / groups) * d * h * w;
    const ranks = [plo, phi].flatMap((p) => {
      const a = Math.floor((p / 100) * (n - 1));
      return [a, Math.min(a + 1, n - 1)];
    });
    const high = new Float64Array(65536);
    await each(g, (key) => high[key >>> 16]!++);
    // for each rank: its bin of high bits and its rank within the bin
    const bins = ranks.map((r) => {
      let below = 0;
      let b = 0;
      while (below + high[b]! <= r) below += high[b++]!;
      return { bin: b, rank: r - below };
    });
    const wanted = [...new Set(bins.map((b) => b.bin))];
    const low = wanted.map(() => new Float64Array(65536));
    await each(g, (key) => {
      const t = wanted.indexOf(key >>> 16);
      if (t >= 0) low[t]![key & 0xffff]!++;
    });
    const values = bins.map(({ bin, rank }) => {
      const counts = low[wanted.indexOf(bin)]!;
      let below = 0;
      let b = 0;
      while (below + counts[b]! <= rank) below += counts[b++]!;
      return keyValue(((bin << 16) | b) >>> 0);
    });
    const at = (p: number, v0: number, v1: number) => {
      const pos = (p / 100) * (n - 1);
      return v0 + (v1 - v0) * (pos - Math.floor(pos));
    };
    los.push(at(plo, values[0]!, values[1]!));
    his.push(at(phi, values[2]!, values[3]!));
  }
  return { lo: Array.from({ length: c }, (_, i) => los[groups === 1 ? 0 : i]!), hi: Array.from({ length: c }, (_, i) => his[groups === 1 ? 0 : i]!) };
}

/** Scale intensities so that two percentiles (min and max by default) map onto `range`. */
export function scaleIntensity<V extends VolumeArray>(params: ScaleParams<V>): V {
  const { volume } = params;
  const { lo, hi } = percentileBounds(volume, params.percentiles ?? [0, 100], params.perChannel ?? true);
  return mapLinear(volume, lo, hi, checkRange(params.range ?? [0, 1], 'range'));
}

/** Options of `normalizeChannels`. */
export interface NormalizeParams<V extends VolumeArray> {
  volume: V;
  /** Mean of each channel (or one for all), as a model card gives it. @default each channel's own mean */
  mean?: readonly number[];
  /** Standard deviation of each channel (or one for all). @default each channel's own (population) std */
  std?: readonly number[];
}

/** `(x - mean[c]) / std[c]` per channel. */
export function normalizeChannels<V extends VolumeArray>(params: NormalizeParams<V>): V {
  const { volume } = params;
  checkVolume(volume);
  const c = volume.shape[0];
  const per = volume.data.length / c;
  const pick = (xs: readonly number[] | undefined, name: string, own: (ci: number) => number): number[] => {
    if (xs === undefined) return Array.from({ length: c }, (_, ci) => own(ci));
    if (xs.length !== 1 && xs.length !== c) throw new InvalidArgumentError(`'${name}' has ${xs.length} values; the volume has ${c} channels (give 1 or ${c})`);
    return Array.from({ length: c }, (_, ci) => xs[xs.length === 1 ? 0 : ci]!);
  };
  const ownMean = (ci: number): number => {
    let s = 0;
    for (let i = ci * per; i < (ci + 1) * per; i++) s += volume.data[i]!;
    return s / per;
  };
  const mean = pick(params.mean, 'mean', ownMean);
  const std = pick(params.std, 'std', (ci) => {
    let s = 0;
    for (let i = ci * per; i < (ci + 1) * per; i++) s += (volume.data[i]! - mean[ci]!) ** 2;
    return Math.sqrt(s / per);
  });
  for (const s of std) if (!(Number.isFinite(s) && s > 0)) throw new InvalidArgumentError(`'std' must be positive, got ${s} (a constant channel has std 0)`);
  const out = new Float32Array(volume.data.length);
  for (let ci = 0; ci < c; ci++) {
    const m = mean[ci]!;
    const k = 1 / std[ci]!;
    for (let i = ci * per; i < (ci + 1) * per; i++) out[i] = (volume.data[i]! - m) * k;
  }
  return { ...volume, data: out };
}
