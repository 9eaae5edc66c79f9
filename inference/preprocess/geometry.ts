/** Shared checks and geometry updates for the preprocessing steps. */
import { budgetSetting, resolveBudgets, type Budgets } from '../../converters/budgets.js';
import { InvalidArgumentError, LimitExceededError } from '../../converters/errors.js';
import { multiplyAffine } from '../volumes/affine.js';
import type { Affine, Vec3, VolumeArray } from '../volumes/volume.js';

/** A volume array that may carry geometry (a full `Volume` does). */
export type MaybeGeometry = VolumeArray & { readonly spacing?: Vec3; readonly affine?: Affine };

/** Check that `data` holds exactly `C*D*H*W` values and that every dimension is positive. */
export function checkVolume(v: VolumeArray, name = 'volume'): void {
  const s = v.shape;
  if (s.length !== 4 || !s.every((d) => Number.isSafeInteger(d) && d > 0)) {
    throw new InvalidArgumentError(`'${name}.shape' must be [C, D, H, W] of positive integers, got [${s.join(', ')}]`);
  }
  const n = s[0] * s[1] * s[2] * s[3];
  if (v.data.length !== n) throw new InvalidArgumentError(`'${name}.data' holds ${v.data.length} values, shape [${s.join(', ')}] needs ${n}`);
}

/** Check a `[D, H, W]` size. */
export function checkSize(size: readonly number[], name: string): Vec3 {
  if (size.length !== 3 || !size.every((d) => Number.isSafeInteger(d) && d > 0)) {
    throw new InvalidArgumentError(`'${name}' must be three positive integers [D, H, W], got [${size.join(', ')}]`);
  }
  return [size[0]!, size[1]!, size[2]!];
}

/**
 * Refuse, before it is allocated, an array of `shape` (all channels) larger than
 * `budgets.outputVoxels`; `what` says what would have made it. Returns the voxel count.
 */
export function checkOutputVoxels(shape: readonly number[], what: string, budgets?: Partial<Budgets>): number {
  const max = resolveBudgets(budgets).outputVoxels;
  const n = shape.reduce((a, b) => a * b, 1);
  if (!(n <= max)) {
    throw new LimitExceededError(`${what}: [${shape.join(', ')}] is ${n} voxels, over the budget of ${max} (${budgetSetting('outputVoxels')})`);
  }
  return n;
}

/**
 * The geometry of a new grid whose voxel `(w, h, d)` sits at old continuous voxel
 * `(w * scale[2] + offset[2], h * scale[1] + offset[1], d * scale[0] + offset[0])`
 * (scale and offset given in `[d, h, w]` order).
 */
export function regrid<V extends MaybeGeometry>(v: V, data: Float32Array, shape: [number, number, number, number], scale: Vec3, offset: Vec3): V {
  return { ...v, data, shape, ...regridGeometry(v, scale, offset) };
}

/** The affine and spacing `regrid` gives a new grid (those the volume has). */
export function regridGeometry(v: { readonly spacing?: Vec3; readonly affine?: Affine }, scale: Vec3, offset: Vec3): { affine?: Affine; spacing?: Vec3 } {
  const out: { affine?: Affine; spacing?: Vec3 } = {};
  if (v.affine !== undefined) out.affine = multiplyAffine(v.affine, [scale[2], 0, 0, offset[2], 0, scale[1], 0, offset[1], 0, 0, scale[0], offset[0], 0, 0, 0, 1]);
  if (v.spacing !== undefined) out.spacing = [v.spacing[0] * scale[0], v.spacing[1] * scale[1], v.spacing[2] * scale[2]];
  return out;
}
