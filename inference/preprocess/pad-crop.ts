/**
 * Centre padding or cropping to a size, axis by axis. On an axis of size `n` taken to `m`,
 * padding puts `floor((m - n) / 2)` voxels before and the rest after; cropping starts at
 * `floor((n - m) / 2)`. Padding to `m` then cropping back to `n` is therefore exact, which
 * lets a dense prediction return to the input grid. The affine moves with the grid.
 */
import type { Budgets } from '../../converters/budgets.js';
import type { Vec3 } from '../volumes/volume.js';
import { checkOutputVoxels, checkSize, checkVolume, regrid, type MaybeGeometry } from './geometry.js';

/** Options of `padOrCrop`. */
export interface PadOrCropParams<V extends MaybeGeometry> {
  volume: V;
  /** Target `[D, H, W]`. */
  size: readonly number[];
  /** Value of padded voxels (e.g. -1024 for raw CT, 0 after scaling). @default 0 */
  value?: number;
  /** Budgets; the output (all channels) must fit `outputVoxels`. @default DEFAULT_BUDGETS */
  budgets?: Partial<Budgets>;
}

/** Offsets `[d, h, w]` of the old grid's first voxel in the new grid (negative when cropped). */
export function padCropOffsets(from: readonly number[], to: readonly number[]): Vec3 {
  return [0, 1, 2].map((a) => {
    const n = from[a]!;
    const m = to[a]!;
    return m >= n ? Math.floor((m - n) / 2) : -Math.floor((n - m) / 2);
  }) as Vec3;
}

/** Centre-pad and/or centre-crop each spatial axis to `size`. */
export function padOrCrop<V extends MaybeGeometry>(params: PadOrCropParams<V>): V {
  const { volume } = params;
  checkVolume(volume);
  const size = checkSize(params.size, 'size');
  const [c, d, h, w] = volume.shape;
  const [od, oh, ow] = size;
  checkOutputVoxels([c, od, oh, ow], `padding or cropping [${volume.shape.join(', ')}] to ${size.join('x')}`, params.budgets);
  const off = padCropOffsets([d, h, w], size);
  const out = new Float32Array(c * od * oh * ow);
  const value = params.value ?? 0;
  if (value !== 0) out.fill(value);
  // overlap of old and new grids, in old coordinates
  const lo = off.map((o) => Math.max(0, -o));
  const hi = [d, h, w].map((n, a) => Math.min(n, size[a]! - off[a]!));
  for (let ci = 0; ci < c; ci++) {
    for (let z = lo[0]!; z < hi[0]!; z++) {
      for (let y = lo[1]!; y < hi[1]!; y++) {
        const src = ((ci * d + z) * h + y) * w;
        const dst = ((ci * od + z + off[0]) * oh + y + off[1]) * ow + off[2];
        out.set(volume.data.subarray(src + lo[2]!, src + hi[2]!), dst + lo[2]!);
      }
    }
  }
  return regrid(volume, out, [c, od, oh, ow], [1, 1, 1], [-off[0], -off[1], -off[2]]);
}
