/** Raw voxel files with an explicit shape: no header, the size must match exactly. */
import { InvalidArgumentError } from '../../converters/errors.js';
import { VolumeFormatError } from './errors.js';
import { checkSpacing, spacingAffine } from './read-npy.js';
import { decodeSamples, SAMPLE_BYTES, type SampleType } from './samples.js';
import { checkVoxelCount, VOLUME_LIMITS, type Vec3, type Volume } from './volume.js';

/** How to interpret a raw file. */
export interface RawLayout {
  /** `[D, H, W]` or `[C, D, H, W]`, C order (W fastest). */
  shape: readonly number[];
  /** Sample type. @default 'float32' */
  dtype?: SampleType;
  /** Byte order. @default 'little' */
  endianness?: 'little' | 'big';
  /** Bytes to skip before the data. @default 0 */
  offset?: number;
}

/** Options of `decodeRaw`. */
export interface DecodeRawParams extends RawLayout {
  /** Name used in error messages. @default 'raw' */
  file?: string;
  /** Voxel spacing `[sd, sh, sw]` in mm. @default [1, 1, 1] */
  spacing?: Vec3;
  /** Most voxels accepted. @default VOLUME_LIMITS.maxVoxels */
  maxVoxels?: number;
}

/** A raw file's volume: the layout checked, the shape as `[C, D, H, W]` and the voxel count. */
export interface CheckedRawLayout {
  shape: [number, number, number, number];
  count: number;
  dtype: SampleType;
  offset: number;
  littleEndian: boolean;
  channels: 'single' | 'array';
}

/** Check the caller's layout against a file of `fileBytes`: the errors `decodeRaw` gives. */
export function rawLayout(fileBytes: number, params: DecodeRawParams): CheckedRawLayout {
  const file = params.file ?? 'raw';
  const dtype = params.dtype ?? 'float32';
  const offset = params.offset ?? 0;
  const size = SAMPLE_BYTES[dtype];
  if (size === undefined) throw new InvalidArgumentError(`'dtype' ${String(dtype)} is not one of ${Object.keys(SAMPLE_BYTES).join(', ')}`);
  if (!Number.isSafeInteger(offset) || offset < 0) throw new InvalidArgumentError(`'offset' must be a non-negative integer, got ${offset}`);
  const s = params.shape;
  if (s.length !== 3 && s.length !== 4) throw new InvalidArgumentError(`'shape' must be [D, H, W] or [C, D, H, W], got [${s.join(', ')}]`);
  const shape = (s.length === 3 ? [1, ...s] : [...s]) as [number, number, number, number];
  const n = checkVoxelCount(shape, file, params.maxVoxels ?? VOLUME_LIMITS.maxVoxels, (msg) => {
    throw new InvalidArgumentError(`'shape': ${msg}`);
  });
  const need = offset + n * size;
  if (fileBytes !== need) {
    throw new VolumeFormatError(`${file}: holds ${fileBytes} bytes, but shape [${s.join(', ')}] of ${dtype} at offset ${offset} needs exactly ${need}`, { file });
  }
  return { shape, count: n, dtype, offset, littleEndian: (params.endianness ?? 'little') === 'little', channels: s.length === 4 ? 'array' : 'single' };
}

/** Decode raw samples with the caller's layout; the file must hold exactly `offset + count * size` bytes. */
export function decodeRaw(bytes: Uint8Array, params: DecodeRawParams): Volume {
  const file = params.file ?? 'raw';
  const { shape, count, dtype, offset, littleEndian, channels } = rawLayout(bytes.byteLength, params);
  const samples = decodeSamples(bytes, offset, count, dtype, littleEndian);
  const data = samples instanceof Float32Array ? samples : Float32Array.from(samples);
  const spacing = checkSpacing(params.spacing ?? [1, 1, 1]);
  return { data, shape, spacing, affine: spacingAffine(spacing), source: { format: 'raw', file, channels, warnings: [] } };
}
