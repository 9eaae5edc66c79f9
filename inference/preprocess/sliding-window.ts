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
 * Bounded by `budgets.outputVoxels`: the padded volume, the windows of all the batches
 * together (all channels), and the assembled output, each checked before it is made; and by
 * `budgets.slidingWindows`, the number of windows (of network runs). The window positions are
 * computed one batch at a time, never listed.
 */
import { budgetSetting, resolveBudgets, type Budgets } from '../../converters/budgets.js';
import { InvalidArgumentError, LimitExceededError, UnsupportedError } from '../../converters/errors.js';
import type { Vec3, VolumeArray } from '../volumes/volume.js';
import { checkOutputVoxels, checkSize, checkVolume } from './geometry.js';
import { padOrCrop } from './pad-crop.js';

/** What the callback returns for a batch of `n` windows. */
export interface WindowOutput {
  readonly data: Float32Array;
  /** `[n, K, wd, wh, ww]` (dense, the window's size) or `[n, K]` (one vector per window). */
  readonly shape: readonly number[];
}

/** Options of `slidingWindow`. */
export interface SlidingWindowParams {
  /** `[C, D, H, W]`, already preprocessed. */
  volume: VolumeArray;
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
  /** Value of voxels padded where the volume is smaller than a window. @default 0 */
  padValue?: number;
  /** Runs the network on `[n, C, wd, wh, ww]` windows. */
  run: (batch: Float32Array, shape: readonly [number, number, number, number, number]) => Promise<WindowOutput>;
  /** Stops between batches when aborted. */
  signal?: AbortSignal;
  /** Budgets on the voxels produced (see the module comment). @default DEFAULT_BUDGETS */
  budgets?: Partial<Budgets>;
}

/** The assembled output. */
export type SlidingWindowResult =
  | { readonly kind: 'dense'; readonly data: Float32Array; readonly shape: readonly [number, number, number, number]; readonly windows: number }
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

/** Tile, run and reassemble; see the module comment. */
export async function slidingWindow(params: SlidingWindowParams): Promise<SlidingWindowResult> {
  checkVolume(params.volume);
  const win = checkSize(params.windowSize, 'windowSize');
  const ov = typeof params.overlap === 'number' || params.overlap === undefined ? Array<number>(3).fill(params.overlap ?? 0.25) : [...params.overlap];
  if (ov.length !== 3 || !ov.every((o) => o >= 0 && o < 1)) throw new InvalidArgumentError(`'overlap' must be in [0, 1), got ${JSON.stringify(params.overlap)}`);
  const batchSize = params.batchSize ?? 1;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new InvalidArgumentError(`'batchSize' must be a positive integer, got ${batchSize}`);
  const blend = params.blend ?? 'gaussian';
  if (blend !== 'constant' && blend !== 'gaussian') throw new InvalidArgumentError(`'blend' must be 'constant' or 'gaussian', got '${String(blend)}'`);
  const sigmaScale = params.sigmaScale ?? 0.125;
  if (!(sigmaScale > 0)) throw new InvalidArgumentError(`'sigmaScale' must be positive, got ${sigmaScale}`);

  const [c, d0, h0, w0] = params.volume.shape;
  const padded: Vec3 = [Math.max(d0, win[0]), Math.max(h0, win[1]), Math.max(w0, win[2])];
  const vol = padded.some((n, a) => n !== params.volume.shape[a + 1]) ? padOrCrop({ volume: params.volume, size: padded, value: params.padValue ?? 0, budgets: params.budgets }) : params.volume;
  const [, d, h, w] = vol.shape;
  const axes = [windowStarts(d, win[0], ov[0]!), windowStarts(h, win[1], ov[1]!), windowStarts(w, win[2], ov[2]!)] as const;
  const windows = checkWindowCount([d, h, w], win, ov, params.budgets);
  const per = win[0] * win[1] * win[2];
  checkOutputVoxels([windows, c, ...win], `tiling [${vol.shape.join(', ')}] into ${windows} windows of ${win.join('x')}`, params.budgets);
  const start = (i: number): Vec3 => [axes[0][Math.floor(i / (axes[1].length * axes[2].length))]!, axes[1][Math.floor(i / axes[2].length) % axes[1].length]!, axes[2][i % axes[2].length]!];
  const weights = windowWeights(win, blend, sigmaScale);

  let kind: 'dense' | 'vector' | undefined;
  let k = 0;
  let acc: Float32Array | undefined;
  let wsum: Float32Array | undefined;
  for (let b = 0; b < windows; b += batchSize) {
    params.signal?.throwIfAborted();
    const group = Array.from({ length: Math.min(batchSize, windows - b) }, (_, n) => start(b + n));
    const batch = new Float32Array(group.length * c * per);
    group.forEach(([z0, y0, x0], n) => {
      let o = n * c * per;
      for (let ci = 0; ci < c; ci++) {
        for (let z = 0; z < win[0]; z++) {
          for (let y = 0; y < win[1]; y++) {
            const src = ((ci * d + z0 + z) * h + y0 + y) * w + x0;
            batch.set(vol.data.subarray(src, src + win[2]), o);
            o += win[2];
          }
        }
      }
    });
    const out = await params.run(batch, [group.length, c, win[0], win[1], win[2]]);
    const s = out.shape;
    const count = s.reduce((p, q) => p * q, 1);
    if (s[0] !== group.length || out.data.length !== count) {
      throw new InvalidArgumentError(`'run' returned shape [${s.join(', ')}] with ${out.data.length} values for a batch of ${group.length} windows`);
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
      if (kind === 'dense') checkOutputVoxels([k, d, h, w], `assembling the windows' ${k}-channel outputs`, params.budgets);
      acc = new Float32Array(kind === 'dense' ? k * d * h * w : k);
      if (kind === 'dense') wsum = new Float32Array(d * h * w);
    } else if (kind !== thisKind || s[1] !== k) {
      throw new InvalidArgumentError(`'run' returned shape [${s.join(', ')}] after earlier batches of ${k} ${kind} channels`);
    }
    group.forEach(([z0, y0, x0], n) => {
      if (kind === 'vector') {
        for (let j = 0; j < k; j++) acc![j]! += out.data[n * k + j]!;
        return;
      }
      for (let j = 0; j < k; j++) {
        let i = (n * k + j) * per;
        let wi = 0;
        for (let z = 0; z < win[0]; z++) {
          for (let y = 0; y < win[1]; y++) {
            let p = ((j * d + z0 + z) * h + y0 + y) * w + x0;
            let q = ((z0 + z) * h + y0 + y) * w + x0;
            for (let x = 0; x < win[2]; x++, i++, wi++, p++, q++) {
              const wt = weights[wi]!;
              acc![p]! += out.data[i]! * wt;
              if (j === 0) wsum![q]! += wt;
            }
          }
        }
      }
    });
  }
  if (kind === 'vector') {
    for (let j = 0; j < k; j++) acc![j] = acc![j]! / windows;
    return { kind, data: acc!, shape: [k], windows };
  }
  const plane = d * h * w;
  for (let j = 0; j < k; j++) for (let i = 0; i < plane; i++) acc![j * plane + i] = acc![j * plane + i]! / wsum![i]!;
  let dense: VolumeArray = { data: acc!, shape: [k, d, h, w] };
  if (d !== d0 || h !== h0 || w !== w0) {
    dense = padOrCrop({ volume: dense, size: [d0, h0, w0], budgets: params.budgets });
  }
  return { kind: 'dense', data: dense.data, shape: [k, d0, h0, w0], windows };
}
