/**
 * Errors of the volume readers and writers (codes and titles in the catalogue,
 * `converters/errors.ts`). Sizes beyond a budget throw the shared `LimitExceededError`, bad
 * options the shared `InvalidArgumentError`.
 */
import { defineError } from '../../converters/errors.js';

/** A volume file that is not what it claims to be: truncated, inconsistent, out of bounds. Never retry. */
export const VolumeFormatError = defineError<{ file?: string }>('VolumeFormatError', 'VOLUME_FORMAT');
/** An instance of `VolumeFormatError`. */
export type VolumeFormatError = InstanceType<typeof VolumeFormatError>;

/** A well-formed volume in an encoding this project does not decode (a JPEG transfer syntax, complex voxels). */
export const VolumeUnsupportedError = defineError<{ file?: string }>('VolumeUnsupportedError', 'VOLUME_UNSUPPORTED');
/** An instance of `VolumeUnsupportedError`. */
export type VolumeUnsupportedError = InstanceType<typeof VolumeUnsupportedError>;

/** One series of a DICOM input: its SeriesInstanceUID, file count and description. */
export interface SeriesSummary {
  uid: string;
  files: number;
  description?: string;
}

/** A DICOM input holding several series and no choice among them; `series` lists them. */
export const MixedSeriesError = defineError<{ series: readonly SeriesSummary[] }>('MixedSeriesError', 'VOLUME_MIXED_SERIES');
/** An instance of `MixedSeriesError`. */
export type MixedSeriesError = InstanceType<typeof MixedSeriesError>;
