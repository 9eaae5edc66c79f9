/**
 * A converted model.onnx specialised for one input size (`graph/specialize.ts`), as a file users
 * download: the graph the engine runs, so that plain onnxruntime runs it as fast. It is valid
 * for that spatial size only (any batch). Runs in the fence (`SPECIALIZE_ONNX`): decoding and
 * rewriting a large graph takes a while.
 */
import { budgetSetting, type Budgets } from './budgets.js';
import { InvalidArgumentError, LimitExceededError } from './errors.js';
import { defineTask } from './fence/task.js';
import { specializeModel } from './graph/specialize.js';

/** Parse `D,H,W` (each a positive integer) and bound it: `channels * D * H * W` voxels at most `budgets.outputVoxels`. */
export function parseSpecializeSize(text: string, channels: number, budgets: Pick<Budgets, 'outputVoxels'>, what = 'size'): [number, number, number] {
  const m = /^(\d{1,7}),(\d{1,7}),(\d{1,7})$/.exec(text.trim());
  if (!m) throw new InvalidArgumentError(`'${what}' must be three positive integers D,H,W (e.g. 64,64,64), got '${text.slice(0, 40)}'`);
  const size = [Number(m[1]), Number(m[2]), Number(m[3])] as [number, number, number];
  if (size.some((n) => n < 1)) throw new InvalidArgumentError(`'${what}' must be three positive integers D,H,W, got ${size.join(',')}`);
  const voxels = channels * size[0] * size[1] * size[2];
  if (voxels > budgets.outputVoxels) {
    throw new LimitExceededError(`'${what}' ${size.join(',')} with ${channels} channels is ${voxels} voxels, over ${budgetSetting('outputVoxels')} (${budgets.outputVoxels})`);
  }
  return size;
}

/** Input of `specializeOnnxFile`. */
export interface SpecializeFileInput {
  /** The general model.onnx. */
  bytes: Uint8Array;
  /** Spatial size (D, H, W). */
  size: [number, number, number];
  /** Input channels of the network. */
  channels: number;
}

/**
 * The model specialised for `size`, and what was done. A network that cannot be specialised
 * for that size (too small for its strides, an op shape inference does not know) is refused
 * with the reason.
 */
export function specializeOnnxFile(input: SpecializeFileInput): { bytes: Uint8Array; note: string } {
  const { bytes, note } = specializeModel(input.bytes, [1, input.channels, ...input.size]);
  if (note.startsWith('kept general')) throw new InvalidArgumentError(`model.onnx cannot be specialised for ${input.size.join(',')}: ${note.replace(/^kept general: /, '')}`);
  return { bytes, note };
}

/** `specializeOnnxFile` as a fence task. */
export const SPECIALIZE_ONNX = defineTask(import.meta.url, 'SPECIALIZE_ONNX', specializeOnnxFile);
