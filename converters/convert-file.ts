/** Converting a checkpoint file: read it once, hash it, and convert it (the CLI's path). */
import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import type { Budgets } from './budgets.js';
import { convert, type ConvertOptions, type ConvertResult, type ConvertSource } from './convert.js';
import { decodeCheckpoint, detectFormat } from './formats/index.js';
import { readOnnxFile } from './formats/onnx.js';
import { graphFromModel } from './graph/ir.js';
import { readFileBytes } from './io.js';

/** A conversion source read from a file, with its hash. */
export interface LoadedSource {
  source: ConvertSource;
  sha256: string;
  bytes: number;
}

/**
 * Read a 2D checkpoint (.pth/.safetensors) or a 2D ONNX export for conversion, under
 * `params.budgets` (default DEFAULT_BUDGETS).
 */
export async function loadSource(path: string, bytes?: Uint8Array, params: { budgets?: Partial<Budgets> } = {}): Promise<LoadedSource> {
  const { budgets } = params;
  const data = bytes ?? (await readFileBytes(path));
  const sha256 = createHash('sha256').update(data).digest('hex');
  if (detectFormat(data, path) === 'onnx') {
    const { model, loadExternal } = await readOnnxFile(path, data, { budgets });
    return { source: { kind: 'onnx', graph: graphFromModel(model, { file: path, loadExternal }) }, sha256, bytes: data.byteLength };
  }
  return { source: { kind: 'state-dict', tensors: decodeCheckpoint(data, { file: path, budgets }).tensors }, sha256, bytes: data.byteLength };
}

/** Convert a checkpoint file; the card names the file (by its base name) and its sha256. */
export async function convertFile(path: string, options: ConvertOptions, extra: { labels?: string[]; source?: Record<string, unknown> } = {}): Promise<ConvertResult> {
  const { source, sha256 } = await loadSource(path);
  return convert(source, options, { labels: extra.labels, source: { file: basename(path), sha256, ...extra.source } });
}
