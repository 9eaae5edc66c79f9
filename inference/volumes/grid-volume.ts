/** Turn voxels in a file's own grid (i fastest) plus its affine into a canonical `Volume`. */
import { canonicalAffine, canonicalShape, closestCanonical, columnNorms, reorientToCanonical } from './affine.js';
import { VolumeFormatError } from './errors.js';
import type { Affine, OriginalGrid, Volume, VolumeSource } from './volume.js';

/** Parameters of `gridToVolume`. */
export interface GridToVolumeParams {
  /** File dims `[ni, nj, nk]`, i fastest. */
  dims: readonly [number, number, number];
  /** Channels stored one after another, each a whole `ni*nj*nk` block. */
  channels: number;
  /** `(i, j, k, 1)` -> RAS+ mm, row-major. */
  affine: Affine;
  /** The value of the sample at a file-order index (channel blocks included). */
  read: (index: number) => number;
  source: Omit<VolumeSource, 'grid'>;
  modality?: string;
}

/** The canonical layout of a file grid (see `gridToVolume`), known before any voxel is read. */
export interface CanonicalGrid {
  /** `[C, D, H, W]`. */
  shape: [number, number, number, number];
  grid: OriginalGrid;
  /** Where file voxel `(i, j, k)` of channel 0 goes: `start + i * steps[0] + j * steps[1] + k * steps[2]`. */
  start: number;
  steps: [number, number, number];
  /** The volume around canonical data of `shape`. */
  volume: (data: Float32Array) => Volume;
}

/**
 * The closest RAS+ canonical layout of a file grid (see `volume.ts`). An affine with a value
 * that is not finite, or a voxel axis of no length, is refused: every consumer of the geometry
 * (resampling to a spacing, previews in mm) would go wrong on it.
 */
export function canonicalGrid(params: Omit<GridToVolumeParams, 'read'>): CanonicalGrid {
  const file = params.source.file;
  const steps = columnNorms(params.affine);
  if (!params.affine.slice(0, 12).every(Number.isFinite) || !steps.every((s) => Number.isFinite(s) && s > 0)) {
    throw new VolumeFormatError(`${file}: its geometry is broken: voxel sizes [${steps.join(', ')}] mm from the affine [${params.affine.slice(0, 12).join(', ')}] (each axis needs a finite, non-zero step)`, { file });
  }
  const { axes, flips } = closestCanonical(params.affine);
  const grid: OriginalGrid = { axes, flips, dims: params.dims, affine: [...params.affine] };
  const [nd, nh, nw] = canonicalShape(grid);
  const canonicalSteps = [1, nw, nw * nh];
  let start = 0;
  const fileSteps: [number, number, number] = [0, 0, 0];
  for (let a = 0; a < 3; a++) {
    const f = axes[a]!;
    fileSteps[f] = flips[a] ? -canonicalSteps[a]! : canonicalSteps[a]!;
    if (flips[a]) start += (params.dims[f]! - 1) * canonicalSteps[a]!;
  }
  const affine = canonicalAffine(grid, params.affine);
  const [sw, sh, sd] = columnNorms(affine);
  const shape: [number, number, number, number] = [params.channels, nd, nh, nw];
  return {
    shape,
    grid,
    start,
    steps: fileSteps,
    volume: (data) => ({
      data,
      shape,
      spacing: [sd, sh, sw],
      affine,
      source: { ...params.source, grid },
      ...(params.modality !== undefined ? { modality: params.modality } : {}),
    }),
  };
}

/** Reorient a file grid to the closest RAS+ canonical `[C, D, H, W]` (see `canonicalGrid`). */
export function gridToVolume(params: GridToVolumeParams): Volume {
  const g = canonicalGrid(params);
  const data = new Float32Array(g.shape[0] * g.shape[1] * g.shape[2] * g.shape[3]);
  reorientToCanonical(g.grid, params.channels, params.read, data);
  return g.volume(data);
}
