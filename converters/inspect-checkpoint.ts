/**
 * What a checkpoint file holds, in brief (format, tensor, parameter and buffer counts), from a full
 * decode: the check an upload passes before it is accepted. One task, so that the fence runs
 * the decode of an untrusted file off the request thread.
 */
import type { Budgets } from './budgets.js';
import { defineTask } from './fence/task.js';
import { decodeCheckpoint, detectFormat, type CheckpointFormat } from './formats/index.js';
import { refuseExternalData } from './formats/onnx.js';
import { readFileBytes } from './io.js';
import { countParametersAndBuffers } from './tensor.js';

/** Parameters of `inspectCheckpoint`. */
export interface InspectCheckpointParams {
  /** The file to read. */
  path: string;
  /** Its name for messages and format detection (an upload's own file name); never read as a path. */
  name: string;
  /** Budgets on decoding. @default DEFAULT_BUDGETS */
  budgets?: Partial<Budgets>;
}

/** A checkpoint in brief. */
export interface CheckpointSummary {
  format: CheckpointFormat;
  tensors: number;
  /** Trainable parameters, as PyTorch counts them (see `ParameterCount`); of an ONNX file, its initializers' that are not buffers. */
  parameters: number;
  /** Elements of buffers (BatchNorm statistics), apart from the parameters. */
  buffers: number;
}

/** Decode a checkpoint file and sum it up; a malformed or refused file throws as decoding does. */
export async function inspectCheckpoint(p: InspectCheckpointParams): Promise<CheckpointSummary> {
  const bytes = await readFileBytes(p.path);
  const format = detectFormat(bytes, p.name);
  // An upload's external ONNX data would be looked up on this machine: refused (see readOnnxFile).
  const ckpt = decodeCheckpoint(bytes, { file: p.name, loadExternal: refuseExternalData(p.name, 'an upload'), budgets: p.budgets });
  return { format, tensors: ckpt.tensors.size, ...countParametersAndBuffers(ckpt.tensors) };
}

/** `inspectCheckpoint` as a fence task. */
export const INSPECT_CHECKPOINT = defineTask(import.meta.url, 'INSPECT_CHECKPOINT', inspectCheckpoint);
