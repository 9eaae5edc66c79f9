/**
 * Conversion sources: a checkpoint file the user named (the CLI's path), or the bytes of one
 * fetched from elsewhere (a URL, an upload, the zoo); read once, hashed, and converted. From
 * fetched bytes, `convertToFiles` converts and encodes the outputs as one task the fence can run.
 */
import { basename } from 'node:path';
import type { Budgets } from './budgets.js';
import { convert, type Card, type ConvertOptions, type ConvertResult, type ConvertSource } from './convert.js';
import { defineTask } from './fence/task.js';
import { decodeCheckpoint, detectFormat } from './formats/index.js';
import { decodeOnnx, readOnnxFile, refuseExternalData, type ExternalDataLoader, type Onnx } from './formats/onnx.js';
import { graphFromModel } from './graph/ir.js';
import { readFileBytes, sha256Hex } from './io.js';
import { UnsupportedError } from './errors.js';
import { encodeOutput, type OutputFormat } from './outputs.js';

/** A conversion source read from a file, with its hash. */
export interface LoadedSource {
  source: ConvertSource;
  sha256: string;
  bytes: number;
}

function loaded(name: string, data: Uint8Array, onnx: { model: Onnx.IModelProto; loadExternal: ExternalDataLoader } | undefined, budgets: Partial<Budgets> | undefined): LoadedSource {
  const sha256 = sha256Hex(data);
  const source: ConvertSource = onnx
    ? { kind: 'onnx', graph: graphFromModel(onnx.model, { file: name, loadExternal: onnx.loadExternal }) }
    : { kind: 'state-dict', tensors: decodeCheckpoint(data, { file: name, budgets }).tensors };
  return { source, sha256, bytes: data.byteLength };
}

/**
 * Read a 2D checkpoint (.pth/.safetensors) or a 2D ONNX export from a file the user named,
 * under `params.budgets` (default DEFAULT_BUDGETS); an ONNX file's external data is read from
 * its folder (see `readOnnxFile`).
 */
export async function loadSource(path: string, bytes?: Uint8Array, params: { budgets?: Partial<Budgets> } = {}): Promise<LoadedSource> {
  const { budgets } = params;
  const data = bytes ?? (await readFileBytes(path));
  return loaded(path, data, detectFormat(data, path) === 'onnx' ? await readOnnxFile(path, data, { budgets }) : undefined, budgets);
}

/**
 * A 2D checkpoint or ONNX export whose bytes were fetched: `name` is for messages and for the
 * format's extension only, never a path on this machine, and external ONNX data is refused.
 * `origin` says where the bytes came from, as in "a URL".
 */
export function sourceFromBytes(name: string, data: Uint8Array, origin: string, params: { budgets?: Partial<Budgets> } = {}): LoadedSource {
  const { budgets } = params;
  if (detectFormat(data, name) !== 'onnx') return loaded(name, data, undefined, budgets);
  return loaded(name, data, { model: decodeOnnx(data, { file: name, budgets }), loadExternal: refuseExternalData(name, origin) }, budgets);
}

/** Convert a checkpoint file; the card names the file (by its base name) and its sha256. */
export async function convertFile(
  path: string,
  options: ConvertOptions,
  extra: { labels?: string[]; source?: Record<string, unknown>; budgets?: Partial<Budgets> } = {},
): Promise<ConvertResult> {
  const { source, sha256 } = await loadSource(path);
  return convert(source, options, { labels: extra.labels, source: { file: basename(path), sha256, ...extra.source }, budgets: extra.budgets });
}

/** Parameters of `convertToFiles`. */
export interface ConvertToFilesParams {
  /** The checkpoint's name (its extension helps tell the format); never read as a path. */
  name: string;
  bytes: Uint8Array;
  /** Where the bytes came from, for the refusal of external ONNX data ("a URL", "an upload"). */
  origin: string;
  /** Budgets on reading and converting. @default DEFAULT_BUDGETS */
  budgets?: Partial<Budgets>;
  options: ConvertOptions;
  /** What the card records besides the conversion. */
  info?: Parameters<typeof convert>[2];
  /** The files to encode, each under its name; an `optional` one the network cannot be written as is left out. */
  outputs: { format: OutputFormat; name: string; optional?: boolean }[];
}

/** The card and the encoded files of a conversion (file name -> chunks, in order). */
export interface ConvertedFiles {
  card: Card;
  files: [string, Uint8Array[]][];
}

/** Decode a fetched checkpoint, convert it and encode the outputs. */
export async function convertToFiles(p: ConvertToFilesParams): Promise<ConvertedFiles> {
  const { source } = sourceFromBytes(p.name, p.bytes, p.origin, { budgets: p.budgets });
  const result = convert(source, p.options, { ...p.info, budgets: p.budgets });
  const files: [string, Uint8Array[]][] = [];
  for (const o of p.outputs) {
    try {
      files.push(...encodeOutput(result, o.format, o.name));
    } catch (err) {
      if (!(o.optional && err instanceof UnsupportedError)) throw err;
    }
  }
  return { card: result.card, files };
}

/** `convertToFiles` as a fence task. */
export const CONVERT_TO_FILES = defineTask(import.meta.url, 'CONVERT_TO_FILES', convertToFiles);
