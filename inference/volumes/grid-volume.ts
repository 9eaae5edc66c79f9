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

/**
 * Reorient a file grid to the closest RAS+ canonical `[C, D, H, W]` (see `volume.ts`). An
 * affine with a value that is not finite, or a voxel axis of no length, is refused: every
 * consumer of the geometry (resampling to a spacing, previews in mm) would go wrong on it.
 */
export function gridToVolume(params: GridToVolumeParams): Volume {
  const file = params.source.file;
  const steps = columnNorms(params.affine);
  if (!params.affine.slice(0, 12).every(Number.isFinite) || !steps.every((s) => Number.isFinite(s) && s > 0)) {
    throw new VolumeFormatError(`${file}: its geometry is broken: voxel sizes [${steps.join(', ')}] mm from the affine [${params.affine.slice(0, 12).join(', ')}] (each axis needs a finite, non-zero step)`, { file });
  }
  const { axes, flips } = closestCanonical(params.affine);
  const grid: OriginalGrid = { axes, flips, dims: params.dims, affine: [...params.affine] };
  const [nd, nh, nw] = canonicalShape(grid);
  const data = new Float32Array(params.channels * nd * nh * nw);
  reorientToCanonical(grid, params.channels, params.read, data);
  const affine = canonicalAffine(grid, params.affine);
  const [sw, sh, sd] = columnNorms(affine);
  return {
    data,
    shape: [params.channels, nd, nh, nw],
    spacing: [sd, sh, sw],
    affine,
    source: { ...params.source, grid },
    ...(params.modality !== undefined ? { modality: params.modality } : {}),
  };
}
