/**
 * One entry point for every volume input: a file, a folder or a zip (of DICOM files or PNG
 * slices), or bytes held in memory. The format comes from the magic bytes, then from the
 * folder's or archive's contents, then from the file name's extension.
 *
 * Budgets (`converters/budgets.ts`): a folder or zip holds at most `volumeFiles` slices; a zip's
 * entries are held, by their declared sizes and before any is inflated, against
 * `unpackedEntryBytes` each, `unpackedTotalBytes` together and `compressionRatio`; a `.nii.gz`
 * against the first and the last. A NIfTI file is read as a stream (`readNiftiFile`): its bytes
 * and what they inflate to are never held whole.
 */
import { readFileSync } from 'node:fs';
import { open, readdir, stat } from 'node:fs/promises';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { basename, join } from 'node:path';
import { boundMessage, budgetSetting, resolveBudgets, type Budgets } from '../../converters/budgets.js';
import { CheckpointFormatError, InvalidArgumentError, LimitExceededError } from '../../converters/errors.js';
import { ZipReader, looksLikeZip, type ZipEntry } from '../../converters/formats/zip.js';
import { readFileBytes } from '../../converters/io.js';
import { looksLikeDicom, parseDicom, type DicomFile } from './dicom-parse.js';
import { VolumeFormatError } from './errors.js';
import { looksLikeGzip } from './gunzip.js';
import { chooseSeries, decodeDicomSeries, planSeries, seriesFile, seriesLimits, type NamedBytes, type SeriesFile } from './read-dicom.js';
import { decodePngSlices, decodeTiffStack, looksLikePng, looksLikeTiff, spoolPngSlices, spoolTiffFile } from './read-image-stack.js';
import { decodeNifti, looksLikeNifti } from './read-nifti.js';
import { looksLikeNiftiFile, readNiftiFile, spoolNiftiFile } from './read-nifti-file.js';
import type { SpooledVolume } from './plane-source.js';
import { canonicalGrid } from './grid-volume.js';
import { spoolGrid } from './spool-grid.js';
import { spoolNpyFile, spoolRawFile } from './spool-samples.js';
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
  /** Budgets on files and unpacked bytes (see the module comment). @default DEFAULT_BUDGETS */
  budgets?: Partial<Budgets>;
  /** DICOM: largest relative deviation of a slice gap from the mean. @default 0.1 */
  sliceSpacingTolerance?: number;
}

const MAX_FOLDER_DEPTH = 8;
/** Entries up to this size are exempt from the compression-ratio budget (its own definition). */
const RATIO_EXEMPT_BYTES = 1024 * 1024;

function tooManyFiles(source: string, max: number): LimitExceededError {
  return new LimitExceededError(`${source}: holds more than ${max} files, over the budget (${budgetSetting('volumeFiles')})`);
}

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
        if (out.length > maxFiles) throw tooManyFiles(dir, maxFiles);
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
      budgets: params.budgets,
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

/** The slice files of a zip (folders, hidden files and macOS resource forks left out). */
function sliceEntries(zip: ZipReader): ZipEntry[] {
  return zip.entries.filter((e) => {
    const base = e.name.split('/').pop() ?? '';
    return !(e.name.endsWith('/') || e.name.startsWith('__MACOSX/') || base.startsWith('.') || base === '');
  });
}

/** Refuse, from the declared sizes and before anything is inflated, a zip past its budgets. */
function checkZipBudgets(entries: readonly ZipEntry[], file: string, b: Readonly<Budgets>): void {
  if (entries.length > b.volumeFiles) throw tooManyFiles(file, b.volumeFiles);
  let total = 0;
  for (const e of entries) {
    const name = boundMessage(e.name, 200);
    if (e.size > b.unpackedEntryBytes) {
      throw new LimitExceededError(`${file}: entry '${name}' unpacks to ${e.size} bytes, over the budget of ${b.unpackedEntryBytes} (${budgetSetting('unpackedEntryBytes')})`);
    }
    if (e.size > RATIO_EXEMPT_BYTES && e.size > b.compressionRatio * e.compressedSize) {
      throw new LimitExceededError(`${file}: entry '${name}' unpacks ${e.compressedSize} bytes to ${e.size}, a ratio over the budget of ${b.compressionRatio} (${budgetSetting('compressionRatio')})`);
    }
    total += e.size;
    if (total > b.unpackedTotalBytes) {
      throw new LimitExceededError(`${file}: its entries unpack to more than ${b.unpackedTotalBytes} bytes together, over the budget (${budgetSetting('unpackedTotalBytes')})`);
    }
  }
}

function readZip(bytes: Uint8Array, file: string, params: ReadVolumeParams): NamedBytes[] {
  const b = resolveBudgets(params.budgets);
  try {
    // A slice may come with a macOS resource fork and folders: the directory may list more entries than slices.
    const zip = new ZipReader(bytes, file, { maxEntries: 3 * b.volumeFiles + 100, budgets: b });
    const entries = sliceEntries(zip);
    checkZipBudgets(entries, file, b);
    return entries.map((e) => ({ name: `${file}:${e.name}`, bytes: zip.read(e, { verify: true }) }));
  } catch (err) {
    if (err instanceof CheckpointFormatError) throw new VolumeFormatError(err.message, { file, cause: err });
    throw err;
  }
}

/**
 * A file's format from its first bytes (magic numbers), then from the caller's raw layout or the
 * name's extension: `zip` for an archive of slices, `undefined` when nothing says.
 */
function detectFormat(head: Uint8Array, file: string, params: ReadVolumeParams): VolumeFormat | 'zip' | undefined {
  const name = file.toLowerCase();
  if (looksLikeGzip(head) || looksLikeNifti(head)) return 'nifti';
  if (looksLikeNpy(head)) return 'npy';
  if (looksLikeDicom(head)) return 'dicom';
  if (looksLikeTiff(head)) return 'tiff';
  if (looksLikePng(head)) return 'png';
  if (looksLikeZip(head)) return 'zip';
  if (params.raw !== undefined || name.endsWith('.raw')) return 'raw';
  if (/\.nii(\.gz)?$/.test(name)) return 'nifti';
  if (name.endsWith('.npy')) return 'npy';
  if (name.endsWith('.dcm')) return 'dicom';
  if (/\.tiff?$/.test(name)) return 'tiff';
  return undefined;
}

/** The bytes `detectFormat` looks at: up to DICOM's magic, after its preamble. */
const HEAD_BYTES = 132;

/** Decode a single file's bytes, whatever its format. */
async function decodeBytes(bytes: Uint8Array, file: string, params: ReadVolumeParams): Promise<Volume> {
  const maxVoxels = params.maxVoxels ?? VOLUME_LIMITS.maxVoxels;
  const spacing = params.spacing ? { spacing: params.spacing } : {};
  const detected = params.format ?? detectFormat(bytes, file, params);
  if (detected === 'zip') return decodeFileSet(readZip(bytes, file, params), file, params);
  if (detected === undefined) {
    throw new VolumeFormatError(`${file}: not a recognised volume (NIfTI .nii/.nii.gz, DICOM, NumPy .npy, TIFF, PNG, a zip of DICOM or PNG slices, or raw with a given shape)`, { file });
  }
  const format: VolumeFormat = detected;
  switch (format) {
    case 'nifti':
      return decodeNifti(bytes, { file, maxVoxels, budgets: params.budgets });
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
    const paths = await listFolder(input, resolveBudgets(params.budgets).volumeFiles);
    const files: NamedBytes[] = [];
    for (const p of paths) files.push({ name: p, bytes: await readFileBytes(p) });
    if (files.length === 0) throw new VolumeFormatError(`${input}: folder is empty`, { file: input });
    return decodeFileSet(files, input, params);
  }
  // a NIfTI is read as a stream, straight into the volume (see read-nifti-file.ts)
  if ((params.format === undefined || params.format === 'nifti') && (await looksLikeNiftiFile(input))) return readNiftiFile(input, { file: input, maxVoxels, budgets: params.budgets });
  return decodeBytes(await readFileBytes(input), input, { ...params, file: params.file ?? basename(input) });
}

/**
 * `readVolume` for sliding windows, in memory that does not grow with the volume: a NIfTI file
 * (`spoolNiftiFile`), a folder or zip of DICOM files or PNG slices (`spoolSliceFolder`,
 * `spoolSliceZip`), a `.npy` and a raw file (`spoolNpyFile`, `spoolRawFile`) and a TIFF stack
 * (`spoolTiffFile`) are kept on disk and read a plane at a time; anything else (a single DICOM
 * file, a `.npy` in Fortran order with several channels) is read as `readVolume` reads it, whole. Close a spooled volume when done with it.
 */
export async function openVolume(input: string, params: ReadVolumeParams & { dir?: string } = {}): Promise<Volume | SpooledVolume> {
  let spooled: SpooledVolume | undefined;
  if ((await stat(input)).isDirectory()) {
    if (params.format === undefined || params.format === 'dicom' || params.format === 'png') spooled = await spoolSliceFolder(input, params);
  } else {
    // named as readVolume names a file it reads
    spooled = await spoolAs(params.format ?? detectFormat(await headOf(input), input, params), input, { ...params, file: input });
  }
  return spooled ?? readVolume(input, params);
}

/**
 * A file known by its bytes only (a request's body, named `params.file`) kept on disk for
 * sliding windows when its magic number is that of a format `openVolume` keeps there: NIfTI, a
 * zip of DICOM files or PNG slices, a `.npy`, a TIFF stack. `undefined` for any other (read it
 * whole then, as `readVolume` of its bytes does).
 */
export async function spoolFile(path: string, params: ReadVolumeParams & { file: string; dir?: string }): Promise<SpooledVolume | undefined> {
  return spoolAs(detectFormat(await headOf(path), '', {}), path, params);
}

/** A file of a known format kept on disk, when its reader can keep it there (see `openVolume`). */
async function spoolAs(format: VolumeFormat | 'zip' | undefined, path: string, params: ReadVolumeParams & { file: string; dir?: string }): Promise<SpooledVolume | undefined> {
  const common = {
    file: params.file,
    maxVoxels: params.maxVoxels ?? VOLUME_LIMITS.maxVoxels,
    ...(params.spacing ? { spacing: params.spacing } : {}),
    ...(params.dir !== undefined ? { dir: params.dir } : {}),
  };
  switch (format) {
    case 'nifti':
      return (await looksLikeNiftiFile(path)) ? spoolNiftiFile(path, { ...common, budgets: params.budgets }) : undefined;
    case 'zip':
    case 'dicom':
    case 'png':
      return spoolSliceZip(path, params);
    case 'npy':
      return spoolNpyFile(path, common);
    case 'raw':
      return params.raw === undefined ? undefined : spoolRawFile(path, { ...params.raw, ...common });
    case 'tiff':
      return spoolTiffFile(path, common);
    default:
      return undefined;
  }
}

async function headOf(path: string): Promise<Uint8Array> {
  const fh = await open(path, 'r');
  try {
    const head = new Uint8Array(HEAD_BYTES);
    const { bytesRead } = await fh.read(head, 0, HEAD_BYTES, 0);
    return head.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** A slice file read twice: once for its header, and later again for its pixels. */
interface SliceFile {
  name: string;
  read(): Uint8Array;
}

/**
 * A set of slice files kept on disk, holding one file at a time, read as `decodeFileSet` reads
 * the same files: DICOM when a file is DICOM (each file read once for its header, its pixels
 * dropped; the series laid out from the headers, `planSeries`; then each file read again, in
 * slice order, for its pixels, every frame handed to `spoolGrid`), else PNG slices
 * (`spoolPngSlices`, each file read again when its turn comes). `undefined` when neither
 * applies, or when no DICOM file is an image: `readVolume` says why then.
 */
async function spoolSliceFiles(files: readonly SliceFile[], source: string, params: ReadVolumeParams & { dir?: string }): Promise<SpooledVolume | undefined> {
  const { maxVoxels, tolerance, maxInflatedBytes } = seriesLimits(params);
  const images: SeriesFile[] = [];
  const pngs: SliceFile[] = [];
  let dicom = false;
  for (const f of files) {
    const bytes = f.read();
    const size = bytes.byteLength;
    dicom ||= looksLikeDicom(bytes);
    if (looksLikePng(bytes)) pngs.push(f);
    // its dataset is not kept (nor its bytes): read again when its pixels are wanted
    const load = (): DicomFile => {
      const again = f.read();
      if (again.byteLength !== size) throw new VolumeFormatError(`${f.name}: changed while it was read (${size} bytes, then ${again.byteLength})`, { file: f.name });
      return parseDicom(again, { file: f.name, maxInflatedBytes });
    };
    const image = params.format === 'png' ? undefined : seriesFile(f.name, bytes, maxInflatedBytes, load);
    if (image) images.push(image);
    await yieldToLoop(); // a server's other requests go on between files
  }
  if (params.format === 'dicom' || (params.format === undefined && dicom)) {
    if (images.length === 0) return undefined;
    const series = planSeries(chooseSeries(images, source, params.seriesInstanceUid), source, maxVoxels, tolerance);
    const spool = await spoolGrid({ grid: canonicalGrid(series.grid), dims: series.dims, ...(params.dir !== undefined ? { dir: params.dir } : {}) });
    try {
      let k = 0;
      for (const slice of series.slices()) await spool.put(0, k++, slice);
      return await spool.finish();
    } catch (err) {
      await spool.abort();
      throw err;
    }
  }
  if (params.format === 'png' || (params.format === undefined && pngs.length > 0)) {
    const read = (f: SliceFile) => {
      const bytes = f.read();
      if (!looksLikePng(bytes)) throw new VolumeFormatError(`${f.name}: changed while it was read (no longer a PNG)`, { file: f.name });
      return bytes;
    };
    return spoolPngSlices(
      pngs.map((f) => ({ name: f.name, read: () => read(f) })),
      { source, maxVoxels, ...(params.spacing ? { spacing: params.spacing } : {}), ...(params.dir !== undefined ? { dir: params.dir } : {}) },
    );
  }
  return undefined;
}

/**
 * A folder of DICOM files or PNG slices kept on disk, one file in memory at a time
 * (`spoolSliceFiles`): the same volume as `readVolume` of the folder, bit for bit; `undefined`
 * when it holds neither (`readVolume` reads it then, or says why not).
 */
export async function spoolSliceFolder(input: string, params: ReadVolumeParams & { dir?: string } = {}): Promise<SpooledVolume | undefined> {
  const paths = await listFolder(input, resolveBudgets(params.budgets).volumeFiles);
  return spoolSliceFiles(
    paths.map((path) => ({ name: path, read: () => readFileSync(path) })),
    input,
    params,
  );
}

/**
 * A zip of DICOM files or PNG slices kept on disk: the archive is read at offsets, an entry at a
 * time (its central directory whole), held to the same budgets as `readVolume` holds it, and its
 * slices spooled as `spoolSliceFiles` does. The same volume as `readVolume` of the archive, bit
 * for bit; `undefined` when the file is no zip or holds neither.
 */
export async function spoolSliceZip(input: string, params: ReadVolumeParams & { dir?: string } = {}): Promise<SpooledVolume | undefined> {
  if (!looksLikeZip(await headOf(input))) return undefined;
  const b = resolveBudgets(params.budgets);
  const file = params.file ?? input;
  try {
    const zip = ZipReader.openFile(input, file, { maxEntries: 3 * b.volumeFiles + 100, budgets: b });
    try {
      const entries = sliceEntries(zip);
      checkZipBudgets(entries, file, b);
      return await spoolSliceFiles(
        entries.map((e) => ({ name: `${file}:${e.name}`, read: () => zip.read(e, { verify: true }) })),
        file,
        params,
      );
    } finally {
      zip.close();
    }
  } catch (err) {
    if (err instanceof CheckpointFormatError) throw new VolumeFormatError(err.message, { file, cause: err });
    throw err;
  }
}
