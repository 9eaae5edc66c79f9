/**
 * Volumes in and out: readers for NIfTI, DICOM, NumPy, TIFF/PNG stacks and raw files into
 * one canonical `Volume` type (see `volume.ts` for the axis and affine convention), and the
 * NIfTI, NumPy and PNG-preview writers.
 */
export * from './volume.js';
export * from './errors.js';
export { openVolume, readVolume, spoolFile, spoolSliceFolder, spoolSliceZip, type ReadVolumeParams } from './read-volume.js';
export { spoolNpyFile, spoolRawFile } from './spool-samples.js';
export { decodeNifti, parseNiftiHeader, type DecodeNiftiParams, type NiftiHeader } from './read-nifti.js';
export { looksLikeNiftiFile, readNiftiFile, spoolNiftiFile, type SpoolNiftiParams } from './read-nifti-file.js';
export * from './plane-source.js';
export { SPOOL_BLOCK_BYTES, spoolGrid, spoolWhole, type GridSpool, type SpoolGridParams } from './spool-grid.js';
export { decodeDicomSeries, type DecodeDicomSeriesParams, type NamedBytes } from './read-dicom.js';
export { parseDicom, TRANSFER_SYNTAXES } from './dicom-parse.js';
export { decodeNpy, parseNpyHeader, type DecodeNpyParams } from './read-npy.js';
export { encodeNpy, writeNpy, type EncodeNpyParams } from './write-npy.js';
export { decodeTiffStack, decodePngSlices, naturalCompare, spoolPngSlices, spoolTiffFile, type DecodeStackParams } from './read-image-stack.js';
export { decodeRaw, type DecodeRawParams, type RawLayout } from './read-raw.js';
export { applyAffine, multiplyAffine, columnNorms } from './affine.js';
export { encodeNifti, writeNifti, type EncodeNiftiParams, type NiftiArray } from './write-nifti.js';
