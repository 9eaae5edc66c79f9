/**
 * Sliding-window inference for volumes larger than the network's input: tile the volume
 * into windows of the input size with a given overlap (as MONAI's `sliding_window_inference`
 * places them: step `max(1, floor(window * (1 - overlap)))`, the last window flush with the
 * far edge), run them through an async callback a batch at a time, and put the outputs back
 * together: dense (segmentation) outputs blended with constant or Gaussian weights, vector
 * (classification, features) outputs averaged over the windows. The weights and the division by
 * their sum are MONAI's (`windowWeights`); `tools/sliding_window/reference.py` recomputes both. A
 * volume smaller than the window along an axis is padded (centred, `padValue`) and the output
 * cropped back.
 *
 * Memory. The windows run in the order of their start along D (then H, then W), so a plane is
 * finished as soon as the first window that starts past it comes: no later window touches it.
 * The blend accumulator and its weight sum are a ring of `wd` planes (the window's depth: all
 * the planes a window still to come may touch), `K x wd x H x W` and `wd x H x W` float32; a
 * finished plane is divided by its weight sum, handed to the `sink` (or copied into the
 * assembled output when there is none) and cleared for the next. The windows are cut from the volume as it
 * is, into one batch buffer used again for every batch: padding is virtual (the padded volume is
 * never made) and `channels`' per-voxel maps (intensity, channel replication, normalisation) are
 * applied to each window as it is cut, so the preprocessed volume is never held whole either.
 * Besides the volume and what the `sink` keeps, a dense output holds `slidingWindowBytes` (the
 * ring, one batch of windows and one of outputs); a vector output holds one batch and `K` sums.
 * The result is the same, bit for bit, as blending into a whole-volume accumulator. A volume
 * read a plane at a time (`PlaneSource`, such as a spooled NIfTI) is read once, in order, into a
 * ring of the planes one batch of windows spans (`inputRingPlanes`: the window's depth for one
 * window a batch), so that the input is not held whole either.
 *
 * Bounded by `budgets.slidingWindows`, the number of windows (of network runs), and by
 * `budgets.outputVoxels`: the windows of all the batches together (all channels), the ring, and
 * the assembled output (when there is no `sink`), each checked before it is made. The window
 * positions are computed one batch at a time, never listed.
 */
import { budgetSetting, resolveBudgets, type Budgets } from '../../converters/budgets.js';
import { InvalidArgumentError, LimitExceededError, UnsupportedError } from '../../converters/errors.js';
import { inMemory, type PlaneSource } from '../volumes/plane-source.js';
import type { Vec3, VolumeArray } from '../volumes/volume.js';
import { applyChannelMap, checkChannelMaps, type ChannelMap } from './channel-map.js';
import { checkOutputVoxels, checkSize, checkVolume } from './geometry.js';
import { padCropOffsets } from './pad-crop.js';

/** What the callback returns for a batch of `n` windows. */
export interface WindowOutput {
  readonly data: Float32Array;
  /** `[n, K, wd, wh, ww]` (dense, the window's size) or `[n, K]` (one vector per window). */
  readonly shape: readonly number[];
}

/** Options of `slidingWindow`. */
export interface SlidingWindowParams {
  /**
   * `[C, D, H, W]`: the network's input, or its source when `channels` is given; in memory, or
   * planes read on demand (through a ring of the planes the windows of a batch span).
   */
  volume: VolumeArray | PlaneSource;
  /**
   * The network's input channels as per-voxel maps of `volume`'s channels, applied to each
   * window as it is cut (see `channel-map.ts`). @default `volume`'s channels as they are
   */
  channels?: readonly ChannelMap[];
  /** The network's input size `[wd, wh, ww]`. */
  windowSize: readonly number[];
  /** Fraction of a window shared with its neighbour, in [0, 1), one for all axes or per axis. @default 0.25 */
  overlap?: number | readonly number[];
  /** Windows per call of `run` (the last call may get fewer). @default 1 */
  batchSize?: number;
  /** Weights of dense outputs: equal, or a Gaussian centred on each window. @default 'gaussian' */
  blend?: 'constant' | 'gaussian';
  /** Gaussian sigma as a fraction of the window size. @default 0.125 */
  sigmaScale?: number;
  /** Value of voxels padded where the volume is smaller than a window (after `channels`' maps). @default 0 */
  padValue?: number;
  /**
   * Runs the network on `[n, C, wd, wh, ww]` windows. The batch buffer is used again for the
   * next batch: read or copy it before the returned promise settles.
   */
  run: (batch: Float32Array, shape: readonly [number, number, number, number, number]) => Promise<WindowOutput>;
  /**
   * Where a dense output goes instead of being assembled: called once, when the first batch
   * tells the channel count (`shape` is `[K, D, H, W]`, the volume's grid), after the ring is
   * budgeted and before it (or anything of the output) is allocated, so it may refuse; returns
   * what takes each finished plane. Given, the result's kind is `planes`. @default assemble `[K, D, H, W]`
   */
  sink?: (shape: readonly [number, number, number, number]) => PlaneSink;
  /** Stops between batches when aborted. */
  signal?: AbortSignal;
  /** Budgets on the voxels produced (see the module comment). @default DEFAULT_BUDGETS */
  budgets?: Partial<Budgets>;
}

/**
 * Takes the finished planes of a dense output, in order of `z` (0 to D - 1 on the volume's
 * grid): `plane` is `[K, H, W]` blended values, valid only during the call.
 */
export type PlaneSink = (z: number, plane: Float32Array) => void | Promise<void>;

/** How much of the volume the blend accumulator held: its ring of planes, and the most planes pending at once. */
export interface SlabUse {
  /** Planes (of the padded `H x W`) the accumulator holds: the window's depth. */
  readonly slabPlanes: number;
  /** The most planes touched by a window run and not yet finished, at any time (at most `slabPlanes`). */
  readonly peakPlanes: number;
}

/** The assembled output. */
export type SlidingWindowResult =
  | ({ readonly kind: 'dense'; readonly data: Float32Array; readonly shape: readonly [number, number, number, number]; readonly windows: number } & SlabUse)
  | ({ readonly kind: 'planes'; readonly shape: readonly [number, number, number, number]; readonly windows: number } & SlabUse)
  | { readonly kind: 'vector'; readonly data: Float32Array; readonly shape: readonly [number]; readonly windows: number };

/** Window start positions along one axis. */
export function windowStarts(size: number, window: number, overlap: number): number[] {
  if (size <= window) return [0];
  const step = Math.max(1, Math.floor(window * (1 - overlap)));
  const n = Math.ceil((size - window) / step) + 1;
  return Array.from({ length: n }, (_, i) => Math.min(i * step, size - window));
}

/**
 * Blending weights of one window, `[wd, wh, ww]`, as MONAI's `compute_importance_map`: ones,
 * or the product over the axes of `exp(-x^2 / (2 sigma^2))` with `x` from `-(n - 1) / 2` to
 * `(n - 1) / 2` and `sigma = sigmaScale * n` (not rescaled: its peak is below 1 for an even
 * size), clamped below at `max(min, 1e-3)` so that no voxel of a window counts for nothing.
 */
export function windowWeights(window: Vec3, blend: 'constant' | 'gaussian', sigmaScale: number): Float32Array {
  const [wd, wh, ww] = window;
  const out = new Float32Array(wd * wh * ww);
  if (blend === 'constant') return out.fill(1);
  // float32 at each step, as MONAI computes it
  const axis = (n: number): Float32Array => {
    const sigma = sigmaScale * n;
    return Float32Array.from({ length: n }, (_, i) => Math.exp(Math.fround((i - (n - 1) / 2) ** 2) / Math.fround(-2 * sigma ** 2)));
  };
  const gd = axis(wd);
  const gh = axis(wh);
  const gw = axis(ww);
  let o = 0;
  let min = Infinity;
  for (let z = 0; z < wd; z++) for (let y = 0; y < wh; y++) for (let x = 0; x < ww; x++) min = Math.min(min, (out[o++] = Math.fround(gd[z]! * gh[y]!) * gw[x]!));
  const floor = Math.max(min, 1e-3);
  for (let i = 0; i < out.length; i++) if (!(out[i]! >= floor)) out[i] = floor;
  return out;
}

/**
 * The number of windows tiling a `[D, H, W]` grid (already padded to the window) takes,
 * refused past `budgets.slidingWindows` before any is made; `where` opens the message.
 */
export function checkWindowCount(grid: readonly number[], window: readonly number[], overlap: readonly number[], budgets?: Partial<Budgets>, where?: string): number {
  const counts = [0, 1, 2].map((a) => windowStarts(grid[a]!, window[a]!, overlap[a]!).length);
  const windows = counts[0]! * counts[1]! * counts[2]!;
  const max = resolveBudgets(budgets).slidingWindows;
  if (windows > max) {
    throw new LimitExceededError(`${where === undefined ? '' : `${where}: `}tiling [${grid.join(', ')}] into windows of ${window.join('x')} with overlap [${overlap.join(', ')}] makes ${counts.join(' x ')} = ${windows} windows, over the budget of ${max} (${budgetSetting('slidingWindows')})`);
  }
  return windows;
}

/**
 * The planes of the input a batch of windows spans at most: those `slidingWindow` holds of a
 * volume read a plane at a time (`grid` is the volume's `[D, H, W]`, before padding). The
 * windows of a batch start on at most `1 + ceil((n - 1) / windowsPerPlane)` window planes, one
 * step apart.
 */
export function inputRingPlanes(p: { grid: readonly number[]; window: readonly number[]; overlap?: number | readonly number[]; batchSize?: number }): number {
  const win = checkSize(p.window, 'window');
  const grid = checkSize(p.grid, 'grid');
  const ov = typeof p.overlap === 'number' || p.overlap === undefined ? Array<number>(3).fill(p.overlap ?? 0.25) : [...p.overlap];
  const padded = grid.map((n, a) => Math.max(n, win[a]!));
  const perZ = windowStarts(padded[1]!, win[1], ov[1]!).length * windowStarts(padded[2]!, win[2], ov[2]!).length;
  const stepD = Math.max(1, Math.floor(win[0] * (1 - ov[0]!)));
  return Math.min(grid[0], win[0] + stepD * Math.ceil(((p.batchSize ?? 1) - 1) / perZ));
}

/** Parameters of `slidingWindowBytes`. */
export interface SlidingWindowBytesParams {
  /** The volume's `[D, H, W]`. */
  grid: readonly number[];
  /** The window `[wd, wh, ww]`. */
  window: readonly number[];
  /** Channels of the network's input. */
  channels: number;
  /** Channels of its output, `K`. */
  classes: number;
  /** Output kind. @default 'dense' */
  kind?: 'dense' | 'vector';
  /** @default 1 */
  batchSize?: number;
  /** Channels of a volume read a plane at a time (absent: a volume in memory): its ring of planes is counted. */
  streamedChannels?: number;
  /** @default 0.25 */
  overlap?: number;
}

/**
 * The bytes `slidingWindow` itself holds at most, beside the volume and what the `sink` keeps:
 * for a volume read a plane at a time, its ring of input planes (`inputRingPlanes`);
 * for a dense output the ring (`K x wd x H x W` float32 and the `wd x H x W` weight sums, over
 * the padded grid), the plane cropped back from padding (`K x H x W`), and the Gaussian weights
 * of one window; for both kinds one batch of windows in and one batch of outputs out, each
 * counted twice (ours, and the copy the engine or its worker thread makes).
 */
export function slidingWindowBytes(p: SlidingWindowBytesParams): { slab: number; batch: number; total: number } {
  const win = checkSize(p.window, 'window');
  const [, h, w] = checkSize(p.grid, 'grid');
  const [hp, wp] = [Math.max(h, win[1]), Math.max(w, win[2])];
  const per = win[0] * win[1] * win[2];
  const n = p.batchSize ?? 1;
  const dense = (p.kind ?? 'dense') === 'dense';
  const planes = win[0] * hp * wp;
  const slab = dense ? 4 * ((p.classes + 1) * planes + (hp !== h || wp !== w ? p.classes * h * w : 0) + per) : 4 * p.classes;
  const batch = 2 * 4 * n * (p.channels * per + p.classes * (dense ? per : 1));
  const ring = p.streamedChannels === undefined ? 0 : 4 * p.streamedChannels * inputRingPlanes({ grid: p.grid, window: win, overlap: p.overlap, batchSize: n }) * h * w;
  return { slab: slab + ring, batch, total: slab + ring + batch };
}

/** Tile, run and reassemble; see the module comment. */
export function slidingWindow(params: SlidingWindowParams & { sink?: undefined }): Promise<Exclude<SlidingWindowResult, { kind: 'planes' }>>;
/** Tile, run and hand the finished planes to `params.sink`; see the module comment. */
export function slidingWindow(params: SlidingWindowParams): Promise<SlidingWindowResult>;
export async function slidingWindow(params: SlidingWindowParams): Promise<SlidingWindowResult> {
  const volume = params.volume;
  if (inMemory(volume)) checkVolume(volume);
  else if (!(volume.shape[0] > 0 && Number.isSafeInteger(volume.shape[0]))) throw new InvalidArgumentError(`'volume.shape' must be [C, D, H, W] of positive integers, got [${volume.shape.join(', ')}]`);
  else checkSize(volume.shape.slice(1), 'volume.shape');
  const win = checkSize(params.windowSize, 'windowSize');
  const ov = typeof params.overlap === 'number' || params.overlap === undefined ? Array<number>(3).fill(params.overlap ?? 0.25) : [...params.overlap];
  if (ov.length !== 3 || !ov.every((o) => o >= 0 && o < 1)) throw new InvalidArgumentError(`'overlap' must be in [0, 1), got ${JSON.stringify(params.overlap)}`);
  const batchSize = params.batchSize ?? 1;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new InvalidArgumentError(`'batchSize' must be a positive integer, got ${batchSize}`);
  const blend = params.blend ?? 'gaussian';
  if (blend !== 'constant' && blend !== 'gaussian') throw new InvalidArgumentError(`'blend' must be 'constant' or 'gaussian', got '${String(blend)}'`);
  const sigmaScale = params.sigmaScale ?? 0.125;
  if (!(sigmaScale > 0)) throw new InvalidArgumentError(`'sigmaScale' must be positive, got ${sigmaScale}`);
  const maps = params.channels;
  const [cs, d0, h0, w0] = volume.shape;
  if (maps) checkChannelMaps(maps, cs);
  const c = maps ? maps.length : cs;

  const grid: Vec3 = [d0, h0, w0];
  const padded: Vec3 = [Math.max(d0, win[0]), Math.max(h0, win[1]), Math.max(w0, win[2])];
  const off = padCropOffsets(grid, padded);
  const [d, h, w] = padded;
  const axes = [windowStarts(d, win[0], ov[0]!), windowStarts(h, win[1], ov[1]!), windowStarts(w, win[2], ov[2]!)] as const;
  const windows = checkWindowCount(padded, win, ov, params.budgets);
  const per = win[0] * win[1] * win[2];
  const padding = padded.some((n, a) => n !== grid[a]) ? ` (with padding to ${padded.join('x')})` : '';
  checkOutputVoxels([windows, c, ...win], `tiling [${[c, ...grid].join(', ')}]${padding} into ${windows} windows of ${win.join('x')}`, params.budgets);
  const start = (i: number): Vec3 => [axes[0][Math.floor(i / (axes[1].length * axes[2].length))]!, axes[1][Math.floor(i / axes[2].length) % axes[1].length]!, axes[2][i % axes[2].length]!];
  const weights = windowWeights(win, blend, sigmaScale);

  // Planes read on demand go through a ring of the planes one batch of windows spans.
  const ringPlanes = inMemory(volume) ? 0 : inputRingPlanes({ grid, window: win, overlap: ov, batchSize });
  if (ringPlanes > 0) checkOutputVoxels([cs, ringPlanes, h0, w0], `reading [${volume.shape.join(', ')}] through a ring of ${ringPlanes} planes`, params.budgets);
  const src = inMemory(volume) ? volume.data : new Float32Array(cs * ringPlanes * h0 * w0);
  const planeOf = ringPlanes > 0 ? (sc: number, z: number) => sc * ringPlanes + (z % ringPlanes) : (sc: number, z: number) => sc * d0 + z;
  const used = [...new Set(maps ? maps.map((m) => m.source) : Array.from({ length: cs }, (_, i) => i))];
  let loaded = 0; // the planes before it are read (those of the last ringPlanes still in the ring)
  /** Read into the ring the planes a batch of windows touches, from the first to the last. */
  const load = async (group: readonly Vec3[]): Promise<void> => {
    if (ringPlanes === 0) return;
    const lo = Math.max(0, group[0]![0] - off[0]);
    const hi = Math.min(d0, group[group.length - 1]![0] - off[0] + win[0]);
    if (hi - lo > ringPlanes || lo < loaded - ringPlanes) throw new Error(`sliding window: planes ${lo} to ${hi - 1} do not fit the ring of ${ringPlanes} planes read up to ${loaded - 1}`);
    for (let z = Math.max(loaded, lo); z < hi; z++) {
      for (const sc of used) await (volume as PlaneSource).readPlane(sc, z, src, planeOf(sc, z) * h0 * w0);
    }
    loaded = Math.max(loaded, hi);
  };
  const padValue = params.padValue ?? 0;
  /** Cut the window at padded `(z0, y0, x0)` into `buf` as item `n`. */
  const cut = (buf: Float32Array, n: number, [z0, y0, x0]: Vec3): void => {
    let o = n * c * per;
    const xs = x0 - off[2];
    const a = Math.max(0, -xs);
    const b = Math.min(win[2], w0 - xs);
    for (let ci = 0; ci < c; ci++) {
      const map = maps?.[ci];
      const sc = map ? map.source : ci;
      for (let z = 0; z < win[0]; z++) {
        const zs = z0 + z - off[0];
        for (let y = 0; y < win[1]; y++, o += win[2]) {
          const ys = y0 + y - off[1];
          if (zs < 0 || zs >= d0 || ys < 0 || ys >= h0) {
            buf.fill(padValue, o, o + win[2]);
            continue;
          }
          if (a > 0) buf.fill(padValue, o, o + a);
          if (b < win[2]) buf.fill(padValue, o + b, o + win[2]);
          const at = (planeOf(sc, zs) * h0 + ys) * w0 + xs;
          if (map) applyChannelMap(map, src, at + a, buf, o + a, b - a);
          else buf.set(src.subarray(at + a, at + b), o + a);
        }
      }
    }
  };

  const full = Math.min(batchSize, windows);
  const batchBuffer = new Float32Array(full * c * per);
  const hw = h * w;
  const slab = win[0];
  let kind: 'dense' | 'vector' | undefined;
  let k = 0;
  let acc: Float32Array | undefined;
  let wsum: Float32Array | undefined;
  let assembled: Float32Array | undefined;
  const assemble = (classes: number): PlaneSink => {
    checkOutputVoxels([classes, ...grid], `assembling the windows' ${classes}-channel outputs`, params.budgets);
    const out = (assembled = new Float32Array(classes * d0 * h0 * w0));
    const n = h0 * w0;
    return (z, plane) => {
      for (let j = 0; j < classes; j++) out.set(plane.subarray(j * n, (j + 1) * n), (j * d0 + z) * n);
    };
  };
  let cropped: Float32Array | undefined;
  let next = 0; // the first plane (padded grid) not finished
  let top = 0; // one past the last plane a window has touched
  let peak = 0;
  let deliver: PlaneSink | undefined;
  /** Finish the planes before `z`: divide by the weight sums, hand over those on the volume's grid, clear their slots. */
  const finishBefore = async (z: number): Promise<void> => {
    for (; next < z; next++) {
      const slot = next % slab;
      const a = acc!.subarray(slot * k * hw, (slot + 1) * k * hw);
      const ws = wsum!.subarray(slot * hw, (slot + 1) * hw);
      const zo = next - off[0];
      if (zo >= 0 && zo < d0) {
        for (let j = 0; j < k; j++) for (let i = 0, p = j * hw; i < hw; i++, p++) a[p] = a[p]! / ws[i]!;
        let plane = a;
        if (cropped) {
          plane = cropped;
          for (let j = 0, o = 0; j < k; j++) {
            for (let y = 0; y < h0; y++, o += w0) {
              const from = (j * h + y + off[1]) * w + off[2];
              cropped.set(a.subarray(from, from + w0), o);
            }
          }
        }
        await deliver!(zo, plane);
      }
      a.fill(0);
      ws.fill(0);
    }
  };

  for (let b = 0; b < windows; b += batchSize) {
    params.signal?.throwIfAborted();
    const count = Math.min(batchSize, windows - b);
    const group = Array.from({ length: count }, (_, n) => start(b + n));
    const batch = count === full ? batchBuffer : new Float32Array(count * c * per);
    await load(group);
    group.forEach((at, n) => cut(batch, n, at));
    const out = await params.run(batch, [count, c, win[0], win[1], win[2]]);
    const s = out.shape;
    const values = s.reduce((p, q) => p * q, 1);
    if (s[0] !== count || out.data.length !== values) {
      throw new InvalidArgumentError(`'run' returned shape [${s.join(', ')}] with ${out.data.length} values for a batch of ${count} windows`);
    }
    const isDense = s.length === 5 && s[2] === win[0] && s[3] === win[1] && s[4] === win[2];
    const isVector = s.length === 2 || (s.length === 5 && s[2] === 1 && s[3] === 1 && s[4] === 1);
    if (!isDense && !isVector) {
      throw new UnsupportedError(`'run' returned shape [${s.join(', ')}]: expected [n, K, ${win.join(', ')}] (dense, the window's size) or [n, K] (one vector per window)`);
    }
    const thisKind = isDense ? 'dense' : 'vector';
    if (kind === undefined) {
      kind = thisKind;
      k = s[1]!;
      if (kind === 'dense') {
        checkOutputVoxels([k, slab, h, w], `blending the windows' ${k}-channel outputs over ${slab} planes of ${h}x${w}`, params.budgets);
        deliver = params.sink ? params.sink([k, ...grid]) : assemble(k);
        acc = new Float32Array(slab * k * hw);
        wsum = new Float32Array(slab * hw);
        if (h0 !== h || w0 !== w) cropped = new Float32Array(k * h0 * w0);
      } else {
        acc = new Float32Array(k);
      }
    } else if (kind !== thisKind || s[1] !== k) {
      throw new InvalidArgumentError(`'run' returned shape [${s.join(', ')}] after earlier batches of ${k} ${kind} channels`);
    }
    for (let n = 0; n < count; n++) {
      if (kind === 'vector') {
        for (let j = 0; j < k; j++) acc![j]! += out.data[n * k + j]!;
        continue;
      }
      const [z0, y0, x0] = group[n]!;
      await finishBefore(z0);
      if (z0 + win[0] > next + slab) throw new Error(`sliding window: plane ${z0 + win[0] - 1} is outside the ring of planes ${next} to ${next + slab - 1}`);
      for (let j = 0; j < k; j++) {
        let i = (n * k + j) * per;
        let wi = 0;
        for (let z = 0; z < win[0]; z++) {
          const slot = (z0 + z) % slab;
          for (let y = 0; y < win[1]; y++) {
            let p = ((slot * k + j) * h + y0 + y) * w + x0;
            let q = (slot * h + y0 + y) * w + x0;
            for (let x = 0; x < win[2]; x++, i++, wi++, p++, q++) {
              const wt = weights[wi]!;
              acc![p]! += out.data[i]! * wt;
              if (j === 0) wsum![q]! += wt;
            }
          }
        }
      }
      top = Math.max(top, z0 + win[0]);
      peak = Math.max(peak, top - next);
    }
  }
  if (kind === 'vector') {
    for (let j = 0; j < k; j++) acc![j] = acc![j]! / windows;
    return { kind, data: acc!, shape: [k], windows };
  }
  await finishBefore(d);
  const shape = [k, d0, h0, w0] as const;
  const use = { slabPlanes: slab, peakPlanes: peak };
  return params.sink ? { kind: 'planes', shape, windows, ...use } : { kind: 'dense', data: assembled!, shape, windows, ...use };
}
