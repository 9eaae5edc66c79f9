/**
 * A conversion's model.onnx specialised for one input size (a download option): made once, in
 * the fence, from the stored general file, and kept beside it in the store.
 */
import { SPECIALIZE_ONNX } from '../converters/specialize-file.js';
import { makeError } from '../converters/errors.js';
import type { Fence } from '../converters/fence/fence.js';
import { readAll, type ObjectStorage } from './storage/storage.js';
import { conversionPrefixOf, readSpecializedOnnx, writeSpecializedOnnx, type ConversionManifest, type SpecializedOnnxRecord } from './store.js';

/** Options of `getSpecializedOnnx`. */
export interface GetSpecializedOnnxParams {
  storage: ObjectStorage;
  fence: Fence;
  manifest: ConversionManifest;
  /** Spatial size (D, H, W), already bounded by the caller (`parseSpecializeSize`). */
  size: [number, number, number];
}

/** The stored specialised model.onnx of a conversion, made now if it was not yet. */
export async function getSpecializedOnnx(p: GetSpecializedOnnxParams): Promise<SpecializedOnnxRecord> {
  const onnx = p.manifest.files.find((f) => f.name === 'model.onnx');
  if (!onnx) throw makeError('NOT_FOUND', 'this checkpoint has no model.onnx to specialise');
  if (p.manifest.files.some((f) => f.name === 'model.onnx.data')) throw makeError('UNSUPPORTED', 'model.onnx keeps its weights in model.onnx.data (over 1.8 GiB): it cannot be specialised');
  const prefix = conversionPrefixOf(onnx.key);
  if (!prefix) throw makeError('UNSUPPORTED', `model.onnx is not stored under a conversion (${onnx.key})`);
  const kept = await readSpecializedOnnx(p.storage, prefix, p.size);
  if (kept) return kept;
  const channels = Number((p.manifest.modelCard['input'] as { channels?: number } | undefined)?.channels ?? 3);
  const bytes = await readAll(p.storage, onnx.key);
  const made = await p.fence.run(SPECIALIZE_ONNX, { bytes: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), size: p.size, channels }, { what: 'model.onnx' });
  return writeSpecializedOnnx(p.storage, prefix, p.size, made.bytes, made.note);
}
