/**
 * Converting a checkpoint file: read it once, hash it, and convert it (the CLI's path); or,
 * from its bytes, convert it and encode the outputs, as one task the fence can run.
 */
import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import { convert, type Card, type ConvertOptions, type ConvertResult, type ConvertSource } from './convert.js';
import { defineTask } from './fence/task.js';
import { decodeCheckpoint, detectFormat } from './formats/index.js';
import { readOnnxFile } from './formats/onnx.js';
import { graphFromModel } from './graph/ir.js';
import { readFileBytes } from './io.js';
import { encodeOutput, type OutputFormat } from './outputs.js';

/** A conversion source read from a file, with its hash. */
export interface LoadedSource {
  source: ConvertSource;
  sha256: string;
  bytes: number;
}

/** Read a 2D checkpoint (.pth/.safetensors) or a 2D ONNX export for conversion. */
export async function loadSource(path: string, bytes?: Uint8Array): Promise<LoadedSource> {
  const data = bytes ?? (await readFileBytes(path));
  const sha256 = createHash('sha256').update(data).digest('hex');
  if (detectFormat(data, path) === 'onnx') {
    const { model, loadExternal } = await readOnnxFile(path, data);
    return { source: { kind: 'onnx', graph: graphFromModel(model, { file: path, loadExternal }) }, sha256, bytes: data.byteLength };
  }
  return { source: { kind: 'state-dict', tensors: decodeCheckpoint(data, { file: path }).tensors }, sha256, bytes: data.byteLength };
}

/** Convert a checkpoint file; the card names the file (by its base name) and its sha256. */
export async function convertFile(path: string, options: ConvertOptions, extra: { labels?: string[]; source?: Record<string, unknown> } = {}): Promise<ConvertResult> {
  const { source, sha256 } = await loadSource(path);
  return convert(source, options, { labels: extra.labels, source: { file: basename(path), sha256, ...extra.source } });
}

/** Parameters of `convertToFiles`. */
export interface ConvertToFilesParams {
  /** The checkpoint's name (its extension helps tell the format). */
  name: string;
  bytes: Uint8Array;
  options: ConvertOptions;
  /** What the card records besides the conversion. */
  info?: Parameters<typeof convert>[2];
  /** The files to encode, each under its name. */
  outputs: { format: OutputFormat; name: string }[];
}

/** The card and the encoded files of a conversion (file name -> chunks, in order). */
export interface ConvertedFiles {
  card: Card;
  files: [string, Uint8Array[]][];
}

/** Decode a checkpoint held in memory, convert it and encode the outputs. */
export async function convertToFiles(p: ConvertToFilesParams): Promise<ConvertedFiles> {
  const { source } = await loadSource(p.name, p.bytes);
  const result = convert(source, p.options, p.info);
  const files: [string, Uint8Array[]][] = [];
  for (const o of p.outputs) files.push(...encodeOutput(result, o.format, o.name));
  return { card: result.card, files };
}

/** `convertToFiles` as a fence task. */
export const CONVERT_TO_FILES = defineTask(import.meta.url, 'CONVERT_TO_FILES', convertToFiles);
