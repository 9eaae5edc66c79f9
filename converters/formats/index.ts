/**
 * One entry point for every checkpoint format: detection from the bytes (and the file name
 * where the bytes cannot tell), reading into a state dict, writing by extension.
 */
import { extname } from 'node:path';
import type { Budgets } from '../budgets.js';
import { CheckpointFormatError, InvalidArgumentError } from '../errors.js';
import { readFileBytes, writeChunksAtomic } from '../io.js';
import type { StateDict } from '../tensor.js';
import { decodeOnnx, onnxToCheckpoint, readOnnxFile, type ExternalDataLoader } from './onnx.js';
import { encodePth, readPth } from './pth.js';
import { encodeSafetensors, looksLikeSafetensors, readSafetensors } from './safetensors.js';
import type { StateDictOrigin } from './unwrap.js';
import { looksLikeZip } from './zip.js';

/** The checkpoint formats this project reads. */
export type CheckpointFormat = 'safetensors' | 'pth' | 'onnx';

/** A checkpoint read from a file, whatever its format. */
export interface LoadedCheckpoint {
  readonly format: CheckpointFormat;
  readonly tensors: StateDict;
  readonly metadata: Record<string, string>;
  /** For `.pth`: where the state dict sat inside the pickle. */
  readonly origin?: StateDictOrigin;
}

const EXTENSIONS: Record<string, CheckpointFormat> = {
  '.safetensors': 'safetensors',
  '.pth': 'pth',
  '.pt': 'pth',
  '.bin': 'pth',
  '.ckpt': 'pth',
  '.pkl': 'pth',
  '.tar': 'pth',
  '.onnx': 'onnx',
};

/** The format a file name's extension stands for, if any. */
export function formatFromExtension(path: string): CheckpointFormat | undefined {
  return EXTENSIONS[extname(path).toLowerCase()];
}

/** First bytes of a pickle: PROTO (protocols 2-5) or the opcodes a protocol-0/1 pickle opens with. */
function looksLikePickle(bytes: Uint8Array, byName: CheckpointFormat | undefined): boolean {
  if (bytes.byteLength < 2) return false;
  if (bytes[0] === 0x80) return bytes[1]! >= 2 && bytes[1]! <= 5;
  return byName === 'pth' && '(c]})'.includes(String.fromCharCode(bytes[0]!));
}

/**
 * Detect the format from the first bytes; where they are not conclusive, the file name's
 * extension decides (so that a damaged file gets its own format's precise error).
 */
export function detectFormat(bytes: Uint8Array, file = ''): CheckpointFormat {
  const byName = formatFromExtension(file);
  if (looksLikeZip(bytes)) return 'pth';
  if (looksLikeSafetensors(bytes)) return 'safetensors';
  if (looksLikePickle(bytes, byName)) return 'pth';
  if (byName !== undefined) return byName;
  if (bytes[0] === 0x08) return 'onnx';
  throw new CheckpointFormatError(`${file || 'input'}: not a safetensors, PyTorch or ONNX checkpoint (unrecognised first bytes)`, { file });
}

/** Options of `decodeCheckpoint`. */
export interface DecodeCheckpointParams {
  /** Name used in error messages (and, where the bytes cannot tell, for the format). @default 'checkpoint' */
  file?: string;
  /** Reads an ONNX model's external data files. */
  loadExternal?: ExternalDataLoader;
  /** Budgets on the work the file may cause (unpacking, the pickle, messages). @default DEFAULT_BUDGETS */
  budgets?: Partial<Budgets>;
}

/** Decode a checkpoint held in memory. */
export function decodeCheckpoint(bytes: Uint8Array, params: DecodeCheckpointParams = {}): LoadedCheckpoint {
  const file = params.file ?? 'checkpoint';
  const { budgets } = params;
  const format = detectFormat(bytes, file);
  switch (format) {
    case 'safetensors':
      return { format, ...readSafetensors(bytes, { file, budgets }) };
    case 'pth': {
      const { tensors, origin } = readPth(bytes, { file, budgets });
      return { format, tensors, metadata: {}, origin };
    }
    case 'onnx':
      return { format, ...onnxToCheckpoint(decodeOnnx(bytes, { file, budgets }), { file, loadExternal: params.loadExternal, budgets }) };
  }
}

/** Read a checkpoint file of any supported format. */
export async function readCheckpointFile(path: string, params: { budgets?: Partial<Budgets> } = {}): Promise<LoadedCheckpoint> {
  const { budgets } = params;
  const bytes = await readFileBytes(path);
  if (detectFormat(bytes, path) === 'onnx') {
    const { model, loadExternal } = await readOnnxFile(path, bytes, { budgets });
    return { format: 'onnx', ...onnxToCheckpoint(model, { file: path, loadExternal, budgets }) };
  }
  return decodeCheckpoint(bytes, { file: path, budgets });
}

/** Encode a state dict in a weights-only format, as chunks. */
export function encodeCheckpoint(format: CheckpointFormat, tensors: StateDict, metadata: Record<string, string> = {}): Uint8Array[] {
  switch (format) {
    case 'safetensors':
      return encodeSafetensors(tensors, { metadata });
    case 'pth':
      return encodePth(tensors);
    case 'onnx':
      throw new InvalidArgumentError('an ONNX file needs a network graph, not only weights: convert with a --mode and an architecture');
  }
}

/** Write a state dict to `path` atomically, in the format its extension names. */
export async function writeCheckpointFile(path: string, tensors: StateDict, metadata: Record<string, string> = {}): Promise<number> {
  const format = formatFromExtension(path);
  if (format === undefined) {
    throw new InvalidArgumentError(`cannot tell the output format from '${path}': use .safetensors, .pth or .onnx`);
  }
  return writeChunksAtomic(path, encodeCheckpoint(format, tensors, metadata));
}

