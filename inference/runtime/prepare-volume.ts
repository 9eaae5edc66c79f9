/**
 * The work before the engine, from the bytes a client sent: decode the volume, preprocess it
 * for the model. One task, so that the fence runs it off the request thread.
 */
import type { Budgets } from '../../converters/budgets.js';
import { defineTask } from '../../converters/fence/task.js';
import { readVolume, type ReadVolumeParams, type Volume } from '../volumes/index.js';
import { prepareInput, type InferOptions, type ModelFacts, type PreparedInput } from './pipeline.js';

/** Parameters of `prepareVolume`. */
export interface PrepareVolumeParams {
  /** The volume file's bytes. */
  bytes: Uint8Array;
  /** How to read it (name, DICOM series, ...). */
  read?: ReadVolumeParams;
  model: ModelFacts;
  options: InferOptions;
  /** Budgets on reading and preprocessing. @default DEFAULT_BUDGETS */
  budgets?: Partial<Budgets>;
}

/** The decoded volume and the input made from it. */
export interface PreparedVolume {
  volume: Volume;
  prepared: PreparedInput;
}

/** Decode a volume and make it ready for the network. */
export async function prepareVolume(p: PrepareVolumeParams): Promise<PreparedVolume> {
  const volume = await readVolume(p.bytes, { ...p.read, budgets: p.budgets });
  return { volume, prepared: prepareInput(volume, p.model, p.options, p.budgets) };
}

/** `prepareVolume` as a fence task. */
export const PREPARE_VOLUME = defineTask(import.meta.url, 'PREPARE_VOLUME', prepareVolume);
