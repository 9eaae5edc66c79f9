/**
 * 4x4 affine arithmetic and the closest-canonical (RAS+) reorientation of a voxel grid,
 * following nibabel's `io_orientation` / `as_closest_canonical`.
 */
import type { Affine, OriginalGrid, Vec3 } from './volume.js';

/** The identity affine. */
export function identityAffine(): Affine {
  return [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
}

/** Product `a @ b` of two row-major 4x4 matrices. */
export function multiplyAffine(a: Affine, b: Affine): Affine {
  const out = new Array<number>(16).fill(0);
  for (let r = 0; r < 4; r++) {
    for (let c = 0; c < 4; c++) {
      let s = 0;
      for (let k = 0; k < 4; k++) s += a[r * 4 + k]! * b[k * 4 + c]!;
      out[r * 4 + c] = s;
    }
  }
  return out;
}

/** Apply an affine to a voxel index `(x, y, z)`. */
export function applyAffine(a: Affine, p: readonly number[]): Vec3 {
  const out: Vec3 = [0, 0, 0];
  for (let r = 0; r < 3; r++) out[r] = a[r * 4]! * p[0]! + a[r * 4 + 1]! * p[1]! + a[r * 4 + 2]! * p[2]! + a[r * 4 + 3]!;
  return out;
}

/** Lengths of the first three columns (the voxel sizes along the three index axes). */
export function columnNorms(a: Affine): Vec3 {
  const n: Vec3 = [0, 0, 0];
  for (let c = 0; c < 3; c++) n[c] = Math.hypot(a[c]!, a[4 + c]!, a[8 + c]!);
  return n;
}

function det3(m: readonly number[]): number {
  return m[0]! * (m[4]! * m[8]! - m[5]! * m[7]!) - m[1]! * (m[3]! * m[8]! - m[5]! * m[6]!) + m[2]! * (m[3]! * m[7]! - m[4]! * m[6]!);
}

/** Inverse-transpose of a 3x3 (row-major), or undefined when singular. */
function invTranspose3(m: readonly number[]): number[] | undefined {
  const d = det3(m);
  if (!Number.isFinite(d) || Math.abs(d) < 1e-300) return undefined;
  // cofactor matrix / det == inverse transposed
  return [
    (m[4]! * m[8]! - m[5]! * m[7]!) / d, -(m[3]! * m[8]! - m[5]! * m[6]!) / d, (m[3]! * m[7]! - m[4]! * m[6]!) / d,
    -(m[1]! * m[8]! - m[2]! * m[7]!) / d, (m[0]! * m[8]! - m[2]! * m[6]!) / d, -(m[0]! * m[7]! - m[1]! * m[6]!) / d,
    (m[1]! * m[5]! - m[2]! * m[4]!) / d, -(m[0]! * m[5]! - m[2]! * m[3]!) / d, (m[0]! * m[4]! - m[1]! * m[3]!) / d,
  ];
}

/** The orthogonal factor of the polar decomposition of a 3x3 (Newton iteration), as nibabel's SVD gives. */
export function polarRotation(m: readonly number[]): number[] {
  let r = [...m];
  for (let it = 0; it < 60; it++) {
    const inv = invTranspose3(r);
    if (inv === undefined) return [...m];
    const next = r.map((v, i) => 0.5 * (v + inv[i]!));
    const change = next.reduce((s, v, i) => s + Math.abs(v - r[i]!), 0);
    r = next;
    if (change < 1e-14) break;
  }
  return r;
}

/**
 * For each canonical axis (R, A, S) the file axis that points closest to it and whether it
 * points the opposite way, as nibabel's `io_orientation` decides (greedy on the rotation
 * closest to the affine's direction part; a degenerate axis keeps its place).
 */
export function closestCanonical(affine: Affine): { axes: [number, number, number]; flips: [boolean, boolean, boolean] } {
  const norms = columnNorms(affine);
  const rs: number[] = [];
  for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) rs.push(affine[r * 4 + c]! / (norms[c] || 1));
  const rot = polarRotation(rs);
  const outOf: (number | undefined)[] = [undefined, undefined, undefined];
  const flipOf: boolean[] = [false, false, false];
  for (let inAx = 0; inAx < 3; inAx++) {
    const col = [rot[inAx]!, rot[3 + inAx]!, rot[6 + inAx]!];
    if (col.every((v) => Math.abs(v) <= 1e-8)) continue;
    let out = 0;
    for (let k = 1; k < 3; k++) if (Math.abs(col[k]!) > Math.abs(col[out]!)) out = k;
    outOf[inAx] = out;
    flipOf[inAx] = col[out]! < 0;
    for (let c = 0; c < 3; c++) rot[out * 3 + c] = 0;
  }
  const axes: [number, number, number] = [-1, -1, -1];
  const flips: [boolean, boolean, boolean] = [false, false, false];
  for (let inAx = 0; inAx < 3; inAx++) {
    const out = outOf[inAx];
    if (out !== undefined && axes[out] === -1) {
      axes[out] = inAx;
      flips[out] = flipOf[inAx]!;
    }
  }
  const unused = [0, 1, 2].filter((a) => !axes.includes(a));
  for (let out = 0; out < 3; out++) if (axes[out] === -1) axes[out] = unused.shift()!;
  return { axes, flips };
}

/** The affine of the reoriented grid: `(w, h, d)` -> RAS+ mm. */
export function canonicalAffine(grid: Omit<OriginalGrid, 'affine'>, affine: Affine): Affine {
  const out = identityAffine();
  const origin = [affine[3]!, affine[7]!, affine[11]!];
  for (let a = 0; a < 3; a++) {
    const ax = grid.axes[a]!;
    const sign = grid.flips[a] ? -1 : 1;
    for (let r = 0; r < 3; r++) {
      out[r * 4 + a] = sign * affine[r * 4 + ax]!;
      if (grid.flips[a]) origin[r]! += (grid.dims[ax]! - 1) * affine[r * 4 + ax]!;
    }
  }
  for (let r = 0; r < 3; r++) out[r * 4 + 3] = origin[r]!;
  return out;
}

/**
 * Strides that walk the file's array in canonical order: for canonical axis `a`, the
 * offset of its first element and the step (negative when flipped), in elements of one channel.
 */
function canonicalWalk(grid: Omit<OriginalGrid, 'affine'>): { start: number; step: Vec3 } {
  const strides = [1, grid.dims[0], grid.dims[0] * grid.dims[1]];
  let start = 0;
  const step: Vec3 = [0, 0, 0];
  for (let a = 0; a < 3; a++) {
    const ax = grid.axes[a]!;
    step[a] = grid.flips[a] ? -strides[ax]! : strides[ax]!;
    if (grid.flips[a]) start += (grid.dims[ax]! - 1) * strides[ax]!;
  }
  return { start, step };
}

/** Canonical spatial shape `[D, H, W]` of a file grid. */
export function canonicalShape(grid: Omit<OriginalGrid, 'affine'>): Vec3 {
  return [grid.dims[grid.axes[2]]!, grid.dims[grid.axes[1]]!, grid.dims[grid.axes[0]]!];
}

/**
 * Copy channels of file-order voxels (i fastest, one channel after another) into canonical
 * `[C, D, H, W]` order, converting with `read(fileIndex)`.
 */
export function reorientToCanonical(grid: Omit<OriginalGrid, 'affine'>, channels: number, read: (index: number) => number, out: Float32Array): void {
  const [nd, nh, nw] = canonicalShape(grid);
  const { start, step } = canonicalWalk(grid);
  const per = nd * nh * nw;
  let o = 0;
  for (let c = 0; c < channels; c++) {
    const base = c * per + start;
    for (let d = 0; d < nd; d++) {
      for (let h = 0; h < nh; h++) {
        let p = base + d * step[2] + h * step[1];
        for (let w = 0; w < nw; w++, p += step[0]) out[o++] = read(p);
      }
    }
  }
}

/** The inverse of `reorientToCanonical` for one channel of any typed array: canonical -> file order. */
export function reorientToGrid<T extends { [i: number]: number; length: number }>(grid: Omit<OriginalGrid, 'affine'>, canonical: T, out: T, channels = 1): void {
  const [nd, nh, nw] = canonicalShape(grid);
  const { start, step } = canonicalWalk(grid);
  const per = nd * nh * nw;
  let o = 0;
  for (let c = 0; c < channels; c++) {
    const base = c * per + start;
    for (let d = 0; d < nd; d++) {
      for (let h = 0; h < nh; h++) {
        let p = base + d * step[2] + h * step[1];
        for (let w = 0; w < nw; w++, p += step[0]) out[p] = canonical[o++]!;
      }
    }
  }
}
