/**
 * One entry point for every volume input: a file, a folder or a zip (of DICOM files or PNG
 * slices), or bytes held in memory. The format comes from the magic bytes, then from the
 * folder's or archive's contents, then from the file name's extension.
 */
import { readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { CheckpointFormatError, InvalidArgumentError, LimitExceededError } from '../errors.js';
import { ZipReader, looksLikeZip } from '../formats/zip.js';
import { readFileBytes } from '../io.js';
import { looksLikeDicom } from './dicom-parse.js';
import { VolumeFormatError } from './errors.js';
import { looksLikeGzip } from './gunzip.js';
import { decodeDicomSeries, type NamedBytes } from './read-dicom.js';
import { decodePngSlices, decodeTiffStack, looksLikePng, looksLikeTiff } from './read-image-stack.js';
import { decodeNifti, looksLikeNifti } from './read-nifti.js';
import { decodeNpy, looksLikeNpy } from './read-npy.js';
import { decodeRaw, type RawLayout } from './read-raw.js';
import { VOLUME_LIMITS, type Vec3, type Volume, type VolumeFormat } from './volume.js';

/** Options of `readVolume`; every field is optional except where a format needs it. */
export interface ReadVolumeParams {
  /** Skip detection and read as this format. @default detected */
  format?: VolumeFormat;
  /** Name of bytes passed in memory, for messages and extension-based detection. @default 'input' */
  file?: string;
  /** Layout of a raw file; required for `format: 'raw'` (or a `.raw` name). */
  raw?: RawLayout;
  /** The DICOM series to read when the input holds several. @default the only one */
  seriesInstanceUid?: string;
  /** Spacing `[sd, sh, sw]` in mm for formats without geometry (NumPy, raw, TIFF, PNG). @default [1, 1, 1] */
  spacing?: Vec3;
  /** Most voxels (all channels) of the volume. @default VOLUME_LIMITS.maxVoxels (2^29) */
  maxVoxels?: number;
  /** Most files read from a folder or archive. @default VOLUME_LIMITS.maxFiles (20,000) */
  maxFiles?: number;
  /** DICOM: largest relative deviation of a slice gap from the mean. @default 0.1 */
  sliceSpacingTolerance?: number;
}

const MAX_FOLDER_DEPTH = 8;

/** Files of a folder (recursively, hidden ones skipped), in name order, bounded in count. */
async function listFolder(dir: string, maxFiles: number): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, depth: number): Promise<void> => {
    if (depth > MAX_FOLDER_DEPTH) return;
    const entries = (await readdir(d, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p, depth + 1);
      else if (e.isFile()) {
        out.push(p);
        if (out.length > maxFiles) throw new LimitExceededError(`${dir}: holds more than the limit of ${maxFiles} files`);
      }
    }
  };
  await walk(dir, 0);
  return out;
}

/** Read a set of slice files (from a folder or an archive): DICOM if any file is DICOM, else PNG. */
async function decodeFileSet(files: NamedBytes[], source: string, params: ReadVolumeParams): Promise<Volume> {
  const maxVoxels = params.maxVoxels ?? VOLUME_LIMITS.maxVoxels;
  const dicom = files.filter((f) => looksLikeDicom(f.bytes));
  if (params.format === 'dicom' || (params.format === undefined && dicom.length > 0)) {
    return decodeDicomSeries({
      files: dicom.length > 0 ? dicom : files,
      source,
      maxVoxels,
      ...(params.seriesInstanceUid !== undefined ? { seriesInstanceUid: params.seriesInstanceUid } : {}),
      ...(params.sliceSpacingTolerance !== undefined ? { sliceSpacingTolerance: params.sliceSpacingTolerance } : {}),
    });
  }
  const pngs = files.filter((f) => looksLikePng(f.bytes));
  if (params.format === 'png' || (params.format === undefined && pngs.length > 0)) {
    return decodePngSlices(pngs, { source, maxVoxels, ...(params.spacing ? { spacing: params.spacing } : {}) });
  }
  throw new VolumeFormatError(`${source}: none of its ${files.length} files is a DICOM image or a PNG slice`, { file: source });
}

function readZip(bytes: Uint8Array, file: string, params: ReadVolumeParams): NamedBytes[] {
  const maxFiles = params.maxFiles ?? VOLUME_LIMITS.maxFiles;
  const maxVoxels = params.maxVoxels ?? VOLUME_LIMITS.maxVoxels;
  try {
    const zip = new ZipReader(bytes, file, { maxEntries: maxFiles, maxEntrySize: Math.min(2 ** 32, maxVoxels * 8 + (1 << 26)) });
    const files: NamedBytes[] = [];
    let total = 0;
    for (const e of zip.entries) {
      const base = e.name.split('/').pop() ?? '';
      if (e.name.endsWith('/') || e.name.startsWith('__MACOSX/') || base.startsWith('.') || base === '') continue;
      total += e.size;
      if (total > maxVoxels * 8 + (1 << 30)) throw new LimitExceededError(`${file}: entries inflate to more than ${total} bytes`);
      files.push({ name: `${file}:${e.name}`, bytes: zip.read(e, { verify: true }) });
    }
    return files;
  } catch (err) {
    if (err instanceof CheckpointFormatError) throw new VolumeFormatError(err.message, { file, cause: err });
    throw err;
  }
}

/** Decode a single file's bytes, whatever its format. */
async function decodeBytes(bytes: Uint8Array, file: string, params: ReadVolumeParams): Promise<Volume> {
  const maxVoxels = params.maxVoxels ?? VOLUME_LIMITS.maxVoxels;
  const spacing = params.spacing ? { spacing: params.spacing } : {};
  const name = file.toLowerCase();
  let format = params.format;
  if (format === undefined) {
    if (looksLikeGzip(bytes) || looksLikeNifti(bytes)) format = 'nifti';
    else if (looksLikeNpy(bytes)) format = 'npy';
    else if (looksLikeDicom(bytes)) format = 'dicom';
    else if (looksLikeTiff(bytes)) format = 'tiff';
    else if (looksLikePng(bytes)) format = 'png';
    else if (looksLikeZip(bytes)) return decodeFileSet(readZip(bytes, file, params), file, params);
    else if (params.raw !== undefined || name.endsWith('.raw')) format = 'raw';
    else if (/\.nii(\.gz)?$/.test(name)) format = 'nifti';
    else if (name.endsWith('.npy')) format = 'npy';
    else if (name.endsWith('.dcm')) format = 'dicom';
    else if (/\.tiff?$/.test(name)) format = 'tiff';
    else {
      throw new VolumeFormatError(`${file}: not a recognised volume (NIfTI .nii/.nii.gz, DICOM, NumPy .npy, TIFF, PNG, a zip of DICOM or PNG slices, or raw with a given shape)`, { file });
    }
  }
  switch (format) {
    case 'nifti':
      return decodeNifti(bytes, { file, maxVoxels });
    case 'npy':
      return decodeNpy(bytes, { file, maxVoxels, ...spacing });
    case 'tiff':
      return decodeTiffStack(bytes, { file, maxVoxels, ...spacing });
    case 'dicom':
    case 'png':
      return looksLikeZip(bytes) ? decodeFileSet(readZip(bytes, file, params), file, params) : decodeFileSet([{ name: file, bytes }], file, { ...params, format });
    case 'raw':
      if (params.raw === undefined) throw new InvalidArgumentError(`${file}: a raw volume needs 'raw.shape' (and optionally dtype, endianness, offset)`);
      return decodeRaw(bytes, { ...params.raw, file, maxVoxels, ...spacing });
  }
}

/**
 * Read a volume from a path (file, folder of DICOM or PNG slices, zip of either) or from
 * bytes, into the canonical `[C, D, H, W]` float32 layout described in `volume.ts`.
 */
export async function readVolume(input: string | Uint8Array, params: ReadVolumeParams = {}): Promise<Volume> {
  const maxVoxels = params.maxVoxels ?? VOLUME_LIMITS.maxVoxels;
  if (!(Number.isSafeInteger(maxVoxels) && maxVoxels > 0)) throw new InvalidArgumentError(`'maxVoxels' must be a positive integer, got ${maxVoxels}`);
  if (typeof input !== 'string') return decodeBytes(input, params.file ?? 'input', params);
  const info = await stat(input);
  if (info.isDirectory()) {
    const paths = await listFolder(input, params.maxFiles ?? VOLUME_LIMITS.maxFiles);
    const files: NamedBytes[] = [];
    for (const p of paths) files.push({ name: p, bytes: await readFileBytes(p) });
    if (files.length === 0) throw new VolumeFormatError(`${input}: folder is empty`, { file: input });
    return decodeFileSet(files, input, params);
  }
  return decodeBytes(await readFileBytes(input), input, { ...params, file: params.file ?? basename(input) });
}
