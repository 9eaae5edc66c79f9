/**
 * Typed errors of the volume readers and writers, with their own catalogue (key = code,
 * status attached) next to `CONVERTER_ERRORS`. Sizes beyond a limit throw the shared
 * `LimitExceededError` (code `LIMIT_EXCEEDED`), bad options the shared `InvalidArgumentError`.
 */
import { AcsHubError, type ErrorSpec } from '../errors.js';

/** The codes thrown by `converters/volumes/`, with their status and title. */
export const VOLUME_ERRORS = {
  VOLUME_FORMAT: { status: 422, title: 'Malformed volume file' },
  VOLUME_UNSUPPORTED: { status: 422, title: 'Unsupported volume encoding' },
  VOLUME_MIXED_SERIES: { status: 422, title: 'Several image series in one input' },
} as const satisfies Record<string, ErrorSpec>;

/** A volume file that is not what it claims to be: truncated, inconsistent, out of bounds. Never retry. */
export class VolumeFormatError extends AcsHubError {
  /** The file (or entry inside an archive) the problem was found in. */
  readonly file: string | undefined;
  constructor(message: string, options?: ErrorOptions & { file?: string }) {
    super('VOLUME_FORMAT', VOLUME_ERRORS.VOLUME_FORMAT, message, options);
    this.file = options?.file;
  }
}

/** A well-formed volume in an encoding this project does not decode (a JPEG transfer syntax, complex voxels). */
export class VolumeUnsupportedError extends AcsHubError {
  /** The file (or entry inside an archive) concerned. */
  readonly file: string | undefined;
  constructor(message: string, options?: ErrorOptions & { file?: string }) {
    super('VOLUME_UNSUPPORTED', VOLUME_ERRORS.VOLUME_UNSUPPORTED, message, options);
    this.file = options?.file;
  }
}

/** A DICOM input holding several series and no choice among them; `series` lists them. */
export class MixedSeriesError extends AcsHubError {
  /** The SeriesInstanceUIDs found, with their file counts and descriptions. */
  readonly series: readonly { uid: string; files: number; description?: string }[];
  constructor(message: string, series: readonly { uid: string; files: number; description?: string }[], options?: ErrorOptions) {
    super('VOLUME_MIXED_SERIES', VOLUME_ERRORS.VOLUME_MIXED_SERIES, message, options);
    this.series = series;
  }
}
