/**
 * Loading a model to run: a 3D ONNX file (with the card written beside it, if any), or a 2D
 * checkpoint / 2D ONNX export converted on the fly.
 */
import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Budgets } from '../../converters/budgets.js';
import type { ConvertOptions, Card } from '../../converters/convert.js';
import { convert } from '../../converters/convert.js';
import { loadSource } from '../../converters/convert-file.js';
import { decodeOnnx, int64 } from '../../converters/formats/onnx.js';
import { readFileBytes, concatChunks, sha256Hex } from '../../converters/io.js';
import { encodeOutput } from '../../converters/outputs.js';
import type { LoadedModel } from './pipeline.js';

/** Input rank and channels of an ONNX model's first input. */
export function onnxInputInfo(bytes: Uint8Array, file: string): { rank: number; channels: number | undefined } {
  const model = decodeOnnx(bytes, { file });
  const inits = new Set((model.graph?.initializer ?? []).map((i) => i.name));
  const input = (model.graph?.input ?? []).find((i) => !inits.has(i.name));
  const dims = input?.type?.tensorType?.shape?.dim ?? [];
  const c = dims[1]?.dimValue;
  return { rank: dims.length, channels: c === undefined || c === null ? undefined : int64(c) };
}

/** A 3D ONNX model in memory as a `LoadedModel`. */
export function modelFromBytes(bytes: Uint8Array, card: Card | undefined, file: string, labels?: readonly string[]): LoadedModel {
  const info = onnxInputInfo(bytes, file);
  return {
    source: { key: sha256Hex(bytes), bytes: bytes.byteLength, load: async () => bytes, warmupShape: [1, info.channels ?? card?.input.channels ?? 3, 32, 32, 32] },
    card,
    channels: info.channels ?? card?.input.channels ?? 3,
    labels: card?.labels ?? labels,
  };
}

/**
 * Load `path` for inference: a 3D `.onnx` as it is (its card from `<name>.card.json` beside
 * it), anything else (a 2D checkpoint or 2D ONNX export) converted with `convertOptions`.
 */
export async function loadModelFile(path: string, convertOptions: ConvertOptions = { mode: 'acs' }, labels?: readonly string[], budgets?: Partial<Budgets>): Promise<LoadedModel> {
  const bytes = await readFileBytes(path);
  if (/\.onnx$/i.test(path) && onnxInputInfo(bytes, path).rank === 5) {
    const cardPath = join(dirname(path), `${basename(path).replace(/\.onnx$/i, '')}.card.json`);
    const card = await readFile(cardPath, 'utf8').then((s) => JSON.parse(s) as Card, () => undefined);
    return modelFromBytes(bytes, card, path, labels);
  }
  const { source, sha256: hash } = await loadSource(path, bytes);
  const result = convert(source, convertOptions, { source: { file: basename(path), sha256: hash }, labels: labels ? [...labels] : undefined, budgets });
  const onnx = concatChunks(encodeOutput(result, 'onnx', 'model.onnx').get('model.onnx')!);
  return modelFromBytes(onnx, result.card, path, labels);
}
