/**
 * The per-voxel part of preprocessing as data: for each channel the network takes, the source
 * channel it is made from, an optional clipped linear intensity map (a CT window, or a
 * percentile scaling onto a range), then the normalisation `(x - mean) / std`. On a whole
 * volume (`mapChannels`) it gives, bit for bit, what `windowIntensity` or `scaleIntensity`, then
 * `matchChannels`, then `normalizeChannels` give (each step rounded to float32 as they store
 * it) with one output array instead of three. On one window at a time (`slidingWindow`'s
 * `channels`), it lets sliding windows cut the network's input from the volume as read, so that
 * the windowed, replicated and normalised volume is never held whole.
 */
import type { Budgets } from '../../converters/budgets.js';
import { InvalidArgumentError } from '../../converters/errors.js';
import type { VolumeArray } from '../volumes/volume.js';
import { checkOutputVoxels, checkVolume } from './geometry.js';

/** How one channel of the network's input is made from the source volume. */
export interface ChannelMap {
  /** The source channel. */
  readonly source: number;
  /** Clip to `[lo, hi]`, then map linearly onto `range` (all values onto `range[0]` when `hi <= lo`); absent: values kept. */
  readonly intensity?: { readonly lo: number; readonly hi: number; readonly range: readonly [number, number] };
  /** Subtracted after the intensity map. */
  readonly mean: number;
  /** Divides after the mean (as a multiplication by `1 / std`, as `normalizeChannels` does); positive. */
  readonly std: number;
}

/**
 * Check maps against a source of `sourceChannels` channels: a source channel that exists, a
 * positive finite std, finite numbers. Throws `InvalidArgumentError` naming the map.
 */
export function checkChannelMaps(maps: readonly ChannelMap[], sourceChannels: number): void {
  if (maps.length === 0) throw new InvalidArgumentError("'channels' is empty: the network takes at least one channel");
  maps.forEach((m, i) => {
    if (!Number.isSafeInteger(m.source) || m.source < 0 || m.source >= sourceChannels) throw new InvalidArgumentError(`'channels[${i}].source' is ${m.source}; the volume has channels 0 to ${sourceChannels - 1}`);
    if (!(Number.isFinite(m.std) && m.std > 0)) throw new InvalidArgumentError(`'std' must be positive, got ${m.std} (a constant channel has std 0)`);
    if (!Number.isFinite(m.mean)) throw new InvalidArgumentError(`'channels[${i}].mean' must be a finite number, got ${m.mean}`);
    const t = m.intensity;
    if (t && ![t.lo, t.hi, t.range[0], t.range[1]].every(Number.isFinite)) throw new InvalidArgumentError(`'channels[${i}].intensity' must be finite numbers, got ${JSON.stringify(t)}`);
  });
}

/** Write `map` of `n` values of `src` from `srcAt` into `dst` from `dstAt` (`dst` may be `src`). */
export function applyChannelMap(map: ChannelMap, src: Float32Array, srcAt: number, dst: Float32Array, dstAt: number, n: number): void {
  const mean = map.mean;
  const inv = 1 / map.std;
  const t = map.intensity;
  if (t === undefined) {
    for (let i = 0; i < n; i++) dst[dstAt + i] = (src[srcAt + i]! - mean) * inv;
    return;
  }
  const { lo, hi } = t;
  const r0 = t.range[0];
  const k = hi > lo ? (t.range[1] - r0) / (hi - lo) : 0;
  for (let i = 0; i < n; i++) {
    const v = src[srcAt + i]!;
    const clipped = v < lo ? lo : v > hi ? hi : v;
    // float32 after the intensity step, as the eager steps store it
    dst[dstAt + i] = (Math.fround(r0 + (clipped - lo) * k) - mean) * inv;
  }
}

/** Parameters of `mapChannels`. */
export interface MapChannelsParams<V extends VolumeArray> {
  volume: V;
  /** One map per output channel. */
  channels: readonly ChannelMap[];
  /** Budgets; the output (all channels) must fit `outputVoxels`. @default DEFAULT_BUDGETS */
  budgets?: Partial<Budgets>;
}

/** The maps applied to a whole volume: a new `[channels.length, D, H, W]` volume, geometry kept. */
export function mapChannels<V extends VolumeArray>(params: MapChannelsParams<V>): V {
  const { volume, channels } = params;
  checkVolume(volume);
  const [c, d, h, w] = volume.shape;
  checkChannelMaps(channels, c);
  const per = d * h * w;
  if (channels.length > c) checkOutputVoxels([channels.length, d, h, w], `replicating ${c === 1 ? 'one channel' : `${c} channels`} to ${channels.length}`, params.budgets);
  const out = new Float32Array(channels.length * per);
  channels.forEach((m, i) => applyChannelMap(m, volume.data, m.source * per, out, i * per, per));
  return { ...volume, data: out, shape: [channels.length, d, h, w] };
}
