/**
 * A DICOM series (the files of a folder or a zip) into a canonical `Volume`.
 *
 * Files are grouped by SeriesInstanceUID (several series need a choice), frames are sorted
 * by their position along the slice normal (ImageOrientationPatient row x column cosines,
 * dotted with ImagePositionPatient), RescaleSlope/RescaleIntercept are applied (so CT comes
 * out in Hounsfield units), and the LPS patient geometry becomes a RAS+ affine before the
 * same closest-canonical reorientation as NIfTI. Single-frame files, and multi-frame files
 * with per-frame functional groups (enhanced CT/MR), are read; 8, 16 and 32-bit samples,
 * signed or not, one sample per pixel.
 */
import { resolveBudgets, type Budgets } from '../../converters/budgets.js';
import { InvalidArgumentError, LimitExceededError } from '../../converters/errors.js';
import { getNumbers, getString, firstItem, looksLikeDicom, parseDicom, TAGS, type DicomDataset, type DicomFile } from './dicom-parse.js';
import { MixedSeriesError, VolumeFormatError, VolumeUnsupportedError } from './errors.js';
import { gridToVolume, type GridToVolumeParams } from './grid-volume.js';
import { decodeSamples, type SampleType } from './samples.js';
import { VOLUME_LIMITS, type Vec3, type Volume } from './volume.js';

/** One file of a series, by name. */
export interface NamedBytes {
  readonly name: string;
  readonly bytes: Uint8Array;
}

/** Options of `decodeDicomSeries`. */
export interface DecodeDicomSeriesParams {
  /** The files (those that are not DICOM images, such as a DICOMDIR, are skipped). */
  files: readonly NamedBytes[];
  /** Name of the folder or archive, for messages. @default 'dicom series' */
  source?: string;
  /** Which series to read when the files hold several. @default the only one */
  seriesInstanceUid?: string;
  /** Largest relative deviation of a slice gap from the mean gap. @default 0.1 */
  sliceSpacingTolerance?: number;
  /** Most voxels accepted. @default VOLUME_LIMITS.maxVoxels */
  maxVoxels?: number;
  /** Budgets: a deflated dataset inflates to at most `unpackedEntryBytes`. @default DEFAULT_BUDGETS */
  budgets?: Partial<Budgets>;
}

interface Frame {
  file: string;
  /** Which of the series' files holds it. */
  index: number;
  pixelOffset: number;
  position: Vec3 | undefined;
  instance: number;
  slope: number;
  intercept: number;
}

/** One image file of a series: its name, its series, and its dataset (parsed again on each call, or kept). */
export interface SeriesFile {
  name: string;
  uid: string;
  load: () => DicomFile;
}

const cross = (a: readonly number[], b: readonly number[]): Vec3 => [a[1]! * b[2]! - a[2]! * b[1]!, a[2]! * b[0]! - a[0]! * b[2]!, a[0]! * b[1]! - a[1]! * b[0]!];
const dot = (a: readonly number[], b: readonly number[]): number => a[0]! * b[0]! + a[1]! * b[1]! + a[2]! * b[2]!;

/** An attribute looked for at the top level, then in the shared, then in the frame's functional groups. */
function lookup(ds: DicomFile, frame: DicomDataset | undefined, seqTag: number, tag: number): number[] | undefined {
  return getNumbers(ds, tag) ?? getNumbersIn(firstItem(firstItem(ds, TAGS.SharedFunctionalGroupsSequence), seqTag), tag) ?? getNumbersIn(firstItem(frame, seqTag), tag);
}

function getNumbersIn(ds: DicomDataset | undefined, tag: number): number[] | undefined {
  return ds === undefined ? undefined : getNumbers(ds, tag);
}

function one(ds: DicomFile, tag: number, file: string, required: boolean): number | undefined {
  const v = getNumbers(ds, tag)?.[0];
  if (v === undefined || !Number.isFinite(v)) {
    if (required) throw new VolumeFormatError(`${file}: missing or invalid required attribute ${tag.toString(16).padStart(8, '0')}`, { file });
    return undefined;
  }
  return v;
}

/** A slice step only when it is one (a thickness of 0 says nothing). */
const positive = (v: number | undefined): number | undefined => (v !== undefined && v > 0 ? v : undefined);

/** The limits a series is read within, from the options of `decodeDicomSeries`. */
export function seriesLimits(params: Pick<DecodeDicomSeriesParams, 'maxVoxels' | 'sliceSpacingTolerance' | 'budgets'>): { maxVoxels: number; tolerance: number; maxInflatedBytes: number } {
  const maxVoxels = params.maxVoxels ?? VOLUME_LIMITS.maxVoxels;
  const tolerance = params.sliceSpacingTolerance ?? 0.1;
  if (!(tolerance >= 0)) throw new InvalidArgumentError(`'sliceSpacingTolerance' must be >= 0, got ${tolerance}`);
  return { maxVoxels, tolerance, maxInflatedBytes: Math.min(2 ** 31, resolveBudgets(params.budgets).unpackedEntryBytes, maxVoxels * 8 + (1 << 26)) };
}

/**
 * A file of a series, when it is a DICOM image (`DICM`, pixel data): its series, and its dataset
 * (`load`, or this one parse kept when `load` is not given); `undefined` for any other file.
 */
export function seriesFile(name: string, bytes: Uint8Array, maxInflatedBytes: number, load?: () => DicomFile): SeriesFile | undefined {
  if (!looksLikeDicom(bytes)) return undefined;
  const ds = parseDicom(bytes, { file: name, maxInflatedBytes });
  if (!ds.elements.has(TAGS.PixelData)) return undefined;
  return { name, uid: getString(ds, TAGS.SeriesInstanceUID) ?? '', load: load ?? (() => ds) };
}

/** Decode the chosen series of a set of DICOM files. */
export function decodeDicomSeries(params: DecodeDicomSeriesParams): Volume {
  const source = params.source ?? 'dicom series';
  const { maxVoxels, tolerance, maxInflatedBytes } = seriesLimits(params);
  const images: SeriesFile[] = [];
  for (const f of params.files) {
    const image = seriesFile(f.name, f.bytes, maxInflatedBytes);
    if (image) images.push(image);
  }
  if (images.length === 0) {
    throw new VolumeFormatError(`${source}: no DICOM image among its ${params.files.length} files (looked for 'DICM' at byte 128 and pixel data)`, { file: source });
  }
  const series = planSeries(chooseSeries(images, source, params.seriesInstanceUid), source, maxVoxels, tolerance);
  const [cols, rows, n] = series.dims;
  const per = rows * cols;
  const values = new Float32Array(n * per);
  let k = 0;
  for (const slice of series.slices()) values.set(slice, per * k++);
  return gridToVolume({ ...series.grid, read: (p) => values[p]! });
}

/** The image files of the series asked for, or of the only one (several need a choice). */
export function chooseSeries(images: readonly SeriesFile[], source: string, seriesInstanceUid: string | undefined): SeriesFile[] {
  const bySeries = new Map<string, SeriesFile[]>();
  for (const im of images) bySeries.set(im.uid, [...(bySeries.get(im.uid) ?? []), im]);
  let chosen: SeriesFile[];
  const list = [...bySeries.entries()].map(([uid, fs]) => {
    const description = getString(fs[0]!.load(), TAGS.SeriesDescription);
    return { uid, files: fs.length, ...(description ? { description } : {}) };
  });
  const describe = list.map((s) => `${s.uid || '(no SeriesInstanceUID)'} (${s.files} files${s.description ? `, "${s.description}"` : ''})`).join(', ');
  if (seriesInstanceUid !== undefined) {
    const fs = bySeries.get(seriesInstanceUid);
    if (fs === undefined) throw new InvalidArgumentError(`${source}: no series ${seriesInstanceUid}; it holds ${describe}`);
    chosen = fs;
  } else if (bySeries.size > 1) {
    throw new MixedSeriesError(`${source}: holds ${bySeries.size} series; choose one by its SeriesInstanceUID: ${describe}`, { series: list });
  } else {
    chosen = [...images];
  }
  return chosen;
}

/** A series laid out: its file grid and geometry, and its frames in order, decoded a slice at a time. */
export interface SeriesPlan {
  /** `[cols, rows, frames]`: the file grid, i fastest. */
  dims: [number, number, number];
  /** The grid, its geometry and its provenance (`gridToVolume` without `read`). */
  grid: Omit<GridToVolumeParams, 'read'>;
  /** The frames in order along the slice normal, each rescaled (`cols x rows` float32, valid until the next). */
  slices(): Generator<Float32Array>;
}

/**
 * Lay a series out from its files' headers (each dataset loaded once, not kept): sizes, the
 * frames' order along the slice normal, their gaps, the affine. The pixels are decoded later, a
 * frame at a time, by `slices()` (which loads each file again).
 */
export function planSeries(files: readonly SeriesFile[], source: string, maxVoxels: number, tolerance: number): SeriesPlan {
  const first = files[0]!;
  const f0 = first.load();
  const rows = one(f0, TAGS.Rows, first.name, true)!;
  const cols = one(f0, TAGS.Columns, first.name, true)!;
  const bits = one(f0, TAGS.BitsAllocated, first.name, true)!;
  const stored = one(f0, TAGS.BitsStored, first.name, false) ?? bits;
  const signed = (one(f0, TAGS.PixelRepresentation, first.name, false) ?? 0) === 1;
  const samples = one(f0, TAGS.SamplesPerPixel, first.name, false) ?? 1;
  if (samples !== 1) throw new VolumeUnsupportedError(`${first.name}: ${samples} samples per pixel (colour) is not supported; only greyscale series are`, { file: first.name });
  if (bits !== 8 && bits !== 16 && bits !== 32) throw new VolumeUnsupportedError(`${first.name}: BitsAllocated ${bits} is not supported (8, 16 or 32)`, { file: first.name });
  if (!(stored >= 1 && stored <= bits)) throw new VolumeFormatError(`${first.name}: BitsStored ${stored} is not within 1..${bits}`, { file: first.name });
  if (rows < 1 || cols < 1) throw new VolumeFormatError(`${first.name}: image is ${rows} x ${cols}`, { file: first.name });
  const frameBytes = rows * cols * (bits / 8);
  const type: SampleType = bits === 8 ? 'uint8' : bits === 16 ? 'uint16' : 'uint32';
  const warnings: string[] = [];
  const frames: Frame[] = [];
  let iop: number[] | undefined;
  let pixelSpacing: number[] | undefined;
  let total = 0;
  for (const [index, f] of files.entries()) {
    const ds = index === 0 ? f0 : f.load();
    for (const [tag, want] of [[TAGS.Rows, rows], [TAGS.Columns, cols], [TAGS.BitsAllocated, bits]] as const) {
      const got = one(ds, tag, f.name, true);
      if (got !== want) throw new VolumeFormatError(`${f.name}: attribute ${tag.toString(16).padStart(8, '0')} is ${got}, but ${first.name} has ${want}; a series must share its image size`, { file: f.name });
    }
    const nFrames = one(ds, TAGS.NumberOfFrames, f.name, false) ?? 1;
    if (!Number.isInteger(nFrames) || nFrames < 1) throw new VolumeFormatError(`${f.name}: NumberOfFrames ${nFrames} is invalid`, { file: f.name });
    total += nFrames * rows * cols;
    if (total > maxVoxels) throw new LimitExceededError(`${source}: series holds more than the limit of ${maxVoxels} voxels`);
    const pix = ds.elements.get(TAGS.PixelData)!;
    if (pix.length < nFrames * frameBytes) {
      throw new VolumeFormatError(`${f.name}: pixel data has ${pix.length} bytes; ${nFrames} frame(s) of ${rows} x ${cols} x ${bits} bits need ${nFrames * frameBytes}`, { file: f.name });
    }
    const perFrame = ds.elements.get(TAGS.PerFrameFunctionalGroupsSequence)?.items;
    const instance = one(ds, TAGS.InstanceNumber, f.name, false) ?? 0;
    for (let k = 0; k < nFrames; k++) {
      const fg = perFrame?.[k];
      const o = lookup(ds, fg, TAGS.PlaneOrientationSequence, TAGS.ImageOrientationPatient);
      const ps = lookup(ds, fg, TAGS.PixelMeasuresSequence, TAGS.PixelSpacing);
      if (o !== undefined) {
        if (o.length !== 6 || !o.every(Number.isFinite)) throw new VolumeFormatError(`${f.name}: ImageOrientationPatient must hold 6 numbers, got [${o.join(', ')}]`, { file: f.name });
        if (iop === undefined) iop = o;
        else if (o.some((v, i) => Math.abs(v - iop![i]!) > 1e-4)) throw new VolumeUnsupportedError(`${f.name}: ImageOrientationPatient [${o.join(', ')}] differs from the rest of the series [${iop.join(', ')}]`, { file: f.name });
      }
      if (ps !== undefined && pixelSpacing === undefined) pixelSpacing = ps;
      let position = getNumbersIn(firstItem(fg, TAGS.PlanePositionSequence), TAGS.ImagePositionPatient) ?? (nFrames === 1 ? getNumbers(ds, TAGS.ImagePositionPatient) : undefined);
      if (position !== undefined && (position.length !== 3 || !position.every(Number.isFinite))) throw new VolumeFormatError(`${f.name}: ImagePositionPatient must hold 3 numbers, got [${position.join(', ')}]`, { file: f.name });
      if (position === undefined && nFrames > 1) {
        const top = getNumbers(ds, TAGS.ImagePositionPatient);
        const gap = one(ds, TAGS.SpacingBetweenSlices, f.name, false);
        if (top !== undefined && gap !== undefined && o !== undefined) {
          const n = cross(o.slice(0, 3), o.slice(3, 6));
          position = [top[0]! + k * gap * n[0], top[1]! + k * gap * n[1], top[2]! + k * gap * n[2]];
        }
      }
      const slope = lookup(ds, fg, TAGS.PixelValueTransformationSequence, TAGS.RescaleSlope)?.[0] ?? 1;
      const intercept = lookup(ds, fg, TAGS.PixelValueTransformationSequence, TAGS.RescaleIntercept)?.[0] ?? 0;
      if (!Number.isFinite(slope) || !Number.isFinite(intercept)) throw new VolumeFormatError(`${f.name}: RescaleSlope/RescaleIntercept are not numbers`, { file: f.name });
      frames.push({ file: f.name, index, pixelOffset: pix.offset + k * frameBytes, position: position as Vec3 | undefined, instance: instance + k / nFrames, slope, intercept });
    }
  }
  const ps = pixelSpacing ?? [1, 1];
  if (pixelSpacing === undefined) warnings.push('no PixelSpacing: 1 mm assumed');
  if (!(ps[0]! > 0 && ps[1]! > 0)) throw new VolumeFormatError(`${first.name}: PixelSpacing [${ps.join(', ')}] is not positive`, { file: first.name });
  const rowCos = iop?.slice(0, 3) ?? [1, 0, 0];
  const colCos = iop?.slice(3, 6) ?? [0, 1, 0];
  const normal = cross(rowCos, colCos);
  let step: Vec3;
  if (frames.every((f) => f.position !== undefined) && iop !== undefined) {
    frames.sort((a, b) => dot(a.position!, normal) - dot(b.position!, normal));
    const keys = frames.map((f) => dot(f.position!, normal));
    for (let i = 1; i < keys.length; i++) {
      if (Math.abs(keys[i]! - keys[i - 1]!) < 1e-4) {
        throw new VolumeUnsupportedError(`${source}: ${frames[i - 1]!.file} and ${frames[i]!.file} lie at the same position ${keys[i]!.toFixed(3)} along the slice normal (several acquisitions or echoes in one series?)`);
      }
    }
    if (frames.length > 1) {
      const mean = (keys[keys.length - 1]! - keys[0]!) / (keys.length - 1);
      let worst = 0;
      for (let i = 1; i < keys.length; i++) worst = Math.max(worst, Math.abs(keys[i]! - keys[i - 1]! - mean));
      if (worst > tolerance * mean) {
        throw new VolumeUnsupportedError(`${source}: slice gaps are not uniform (mean ${mean.toFixed(4)} mm, one differs by ${worst.toFixed(4)} mm, over the tolerance ${tolerance}); missing slices?`);
      }
      const a = frames[0]!.position!;
      const b = frames[frames.length - 1]!.position!;
      step = [(b[0] - a[0]) / (frames.length - 1), (b[1] - a[1]) / (frames.length - 1), (b[2] - a[2]) / (frames.length - 1)];
    } else {
      const t = positive(one(f0, TAGS.SliceThickness, first.name, false)) ?? positive(one(f0, TAGS.SpacingBetweenSlices, first.name, false)) ?? 1;
      step = [normal[0] * t, normal[1] * t, normal[2] * t];
    }
  } else {
    frames.sort((a, b) => a.instance - b.instance || (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
    const t = positive(one(f0, TAGS.SpacingBetweenSlices, first.name, false)) ?? positive(one(f0, TAGS.SliceThickness, first.name, false)) ?? 1;
    step = [normal[0] * t, normal[1] * t, normal[2] * t];
    warnings.push('no ImagePositionPatient/ImageOrientationPatient on every frame: ordered by InstanceNumber, geometry approximate');
  }
  const origin = frames[0]!.position ?? [0, 0, 0];
  // LPS columns (i = column index, j = row index, k = sorted frame), then LPS -> RAS.
  const lps = [
    [rowCos[0]! * ps[1]!, colCos[0]! * ps[0]!, step[0], origin[0]],
    [rowCos[1]! * ps[1]!, colCos[1]! * ps[0]!, step[1], origin[1]],
    [rowCos[2]! * ps[1]!, colCos[2]! * ps[0]!, step[2], origin[2]],
  ];
  const affine = [...lps[0]!.map((v) => -v), ...lps[1]!.map((v) => -v), ...lps[2]!, 0, 0, 0, 1];
  const per = rows * cols;
  const mask = 2 ** stored;
  const half = 2 ** (stored - 1);
  const photometric = getString(f0, TAGS.PhotometricInterpretation);
  if (photometric === 'MONOCHROME1') warnings.push('MONOCHROME1: higher values display darker; values are kept as stored');
  const modality = getString(f0, TAGS.Modality);
  const description = getString(f0, TAGS.SeriesDescription);
  function* slices(): Generator<Float32Array> {
    const slice = new Float32Array(per);
    let loaded: { index: number; ds: DicomFile } = { index: 0, ds: f0 };
    for (const f of frames) {
      if (loaded.index !== f.index) loaded = { index: f.index, ds: files[f.index]!.load() };
      const s = decodeSamples(loaded.ds.bytes, f.pixelOffset, per, type, loaded.ds.littleEndian);
      for (let i = 0; i < per; i++) {
        let v = s[i]! % mask;
        if (signed && v >= half) v -= mask;
        slice[i] = v * f.slope + f.intercept;
      }
      yield slice;
    }
  }
  return {
    dims: [cols, rows, frames.length],
    slices,
    grid: {
      dims: [cols, rows, frames.length],
      channels: 1,
      affine,
      source: {
        format: 'dicom',
        file: source,
        channels: 'single',
        dicom: {
          seriesInstanceUid: first.uid,
          ...(description ? { seriesDescription: description } : {}),
          transferSyntaxUid: f0.transferSyntaxUid,
          files: files.length,
          frames: frames.length,
          rescaled: frames.some((f) => f.slope !== 1 || f.intercept !== 0),
        },
        warnings,
      },
      ...(modality ? { modality } : {}),
    },
  };
}
