/**
 * The one volume type every reader returns and every preprocessing step takes.
 *
 * Axis and affine convention (the same for every format):
 * - `data` is a float32 array in C order with `shape = [C, D, H, W]`.
 * - The spatial axes are the closest RAS+ canonical orientation of the file's voxel axes, as
 *   nibabel's `as_closest_canonical` makes it: voxel axes are permuted and flipped (never
 *   resampled) so that `w` runs towards the patient's Right, `h` towards Anterior and `d`
 *   towards Superior, as near as the acquisition allows (an oblique scan stays oblique).
 *   So `data[c, d, h, w] = canonical[w, h, d, c]` where `canonical` is that nibabel array,
 *   `d` runs inferior -> superior and `data[c, d]` is an axial slice.
 * - `affine` is a row-major 4x4 matrix (16 numbers) mapping the voxel index `(w, h, d, 1)`
 *   to RAS+ millimetres `(x, y, z, 1)`: exactly nibabel's `as_closest_canonical(img).affine`.
 *   Its columns 0, 1, 2 are the steps along `w`, `h`, `d`.
 * - `spacing = [sd, sh, sw]` in millimetres: the lengths of affine columns 2, 1, 0.
 * - Because the layout is C order `[D, H, W]` with `w` fastest, the bytes of one channel are
 *   also the bytes of a NIfTI image of dims `[W, H, D]` (NIfTI stores `i` fastest) with this
 *   affine, which is how `writeNifti` writes it.
 * Formats without geometry (NumPy, raw, TIFF/PNG stacks) are taken as already `[D, H, W]`
 * (page/file index, image row, image column): affine `diag(sw, sh, sd, 1)`.
 */
import { LimitExceededError } from '../../converters/errors.js';

/** Three numbers, in the order the name says. */
export type Vec3 = [number, number, number];

/** A row-major 4x4 matrix as 16 numbers. */
export type Affine = number[];

/** The array part of a volume: float32 data and its `[C, D, H, W]` shape. */
export interface VolumeArray {
  readonly data: Float32Array;
  readonly shape: readonly [number, number, number, number];
}

/** The formats `readVolume` reads. */
export type VolumeFormat = 'nifti' | 'dicom' | 'npy' | 'tiff' | 'png' | 'raw';

/**
 * The voxel grid of the file before canonical reorientation: canonical axis `a` (0 = w/R,
 * 1 = h/A, 2 = d/S) is file axis `axes[a]` (0 = i, 1 = j, 2 = k), reversed where `flips[a]`.
 * Writers use it to put an output back into the file's own layout and affine.
 */
export interface OriginalGrid {
  readonly axes: readonly [number, number, number];
  readonly flips: readonly [boolean, boolean, boolean];
  /** File dims `[ni, nj, nk]` (i fastest in the file). */
  readonly dims: readonly [number, number, number];
  /** File affine: `(i, j, k, 1)` -> RAS+ mm, row-major. */
  readonly affine: Affine;
}

/** Where a volume came from and what was done to reach the canonical layout. */
export interface VolumeSource {
  readonly format: VolumeFormat;
  /** The file, folder or archive read (or the name the caller gave for bytes). */
  readonly file: string;
  /** The file's voxel grid, for formats that have geometry (NIfTI, DICOM). */
  readonly grid?: OriginalGrid;
  /** What the channel axis holds: a single image, a NIfTI 4th/5th dimension, RGB components. */
  readonly channels: 'single' | 'nifti-4d' | 'rgb' | 'array';
  /** NIfTI header facts worth carrying to a written output. */
  readonly nifti?: { version: 1 | 2; datatype: number; sformCode: number; qformCode: number; affineFrom: 'sform' | 'qform' | 'pixdim'; xyztUnits: number };
  /** DICOM series facts. */
  readonly dicom?: { seriesInstanceUid: string; seriesDescription?: string; transferSyntaxUid: string; files: number; frames: number; rescaled: boolean };
  /** Non-fatal oddities met while reading (an irregular slice gap, a NaN scale). */
  readonly warnings: readonly string[];
}

/** A volume: data in the canonical `[C, D, H, W]` layout and its geometry (see the module comment). */
export interface Volume extends VolumeArray {
  readonly spacing: Vec3;
  readonly affine: Affine;
  readonly source: VolumeSource;
  /** DICOM Modality (`CT`, `MR`, ...) when the file says. */
  readonly modality?: string;
}

/**
 * Limits every reader applies before it allocates. The files of a folder or archive, and what
 * an archive or gzip may unpack to, are budgets (`budgets.volumeFiles`, `unpackedEntryBytes`,
 * `unpackedTotalBytes`, `compressionRatio` in `converters/budgets.ts`).
 */
export const VOLUME_LIMITS = {
  /** Most voxels (all channels together) of one volume: 2^29, 2 GiB of float32. */
  maxVoxels: 2 ** 29,
} as const;

/**
 * Count the voxels of a shape, refusing it (before anything is allocated) when a dimension
 * is not a positive integer or the product passes `maxVoxels`.
 */
export function checkVoxelCount(dims: readonly number[], where: string, maxVoxels: number = VOLUME_LIMITS.maxVoxels, fail: (msg: string) => never): number {
  let n = 1;
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d <= 0) fail(`invalid dimension ${String(d)} in [${dims.join(', ')}] (each must be a positive integer)`);
    n *= d;
    if (n > maxVoxels) {
      throw new LimitExceededError(`${where}: dimensions [${dims.join(', ')}] hold more than the limit of ${maxVoxels} voxels`);
    }
  }
  return n;
}
