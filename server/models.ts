/** A converted checkpoint as a model the inference engine runs (its ONNX file and card). */
import type { Card } from '../converters/convert.js';
import type { LoadedModel } from '../inference/runtime/pipeline.js';
import { readAll } from '../zoo/storage/storage.js';
import { loadCheckpoint } from '../zoo/store.js';
import { httpError } from './errors.js';
import type { Services } from './services.js';

/** The model of a checkpoint id (the session itself is created, and cached, by the engine). */
export async function checkpointModel(s: Services, id: string): Promise<LoadedModel & { card: Card }> {
  const { manifest } = await loadCheckpoint(s.storage, id);
  const onnx = manifest.files.find((f) => f.name === 'model.onnx');
  if (!onnx) throw httpError('CHECKPOINT_NOT_FOUND', `checkpoint ${id} has no ONNX file`);
  if (manifest.files.some((f) => f.name === 'model.onnx.data')) {
    throw httpError('NOT_FOUND', `checkpoint ${id} is larger than 2 GiB (external ONNX data); download it and run it with acs-hub infer`);
  }
  const model = manifest.modelCard as unknown as Card;
  return {
    source: {
      key: id,
      bytes: onnx.size,
      load: () => readAll(s.storage, onnx.key),
      warmupShape: [1, model.input.channels, 32, 32, 32],
    },
    card: model,
    channels: model.input.channels,
    labels: model.labels ?? undefined,
  };
}
