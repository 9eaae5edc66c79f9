/**
 * The body of an Open Inference Protocol (KServe v2) inference request: the JSON header (the
 * whole body, or its first `Inference-Header-Content-Length` bytes) and the one input tensor,
 * from JSON `data` or the binary tensor data after the header, as float32. One task, so that
 * the fence parses large bodies off the request thread.
 *
 * JSON is read by `parseKServeJson`, which never builds JavaScript arrays for tensor data; the
 * declared shape is held against `budgets.kserveElements` and the data before anything is
 * allocated for it. A malformed request is a 400 `VALIDATION_FAILED`, a budget passed a 413.
 */
import { boundMessage, budgetSetting, resolveBudgets, type Budgets } from '../../converters/budgets.js';
import { LimitExceededError } from '../../converters/errors.js';
import { defineTask } from '../../converters/fence/task.js';
import { httpError } from '../errors.js';
import { parseKServeJson } from './kserve-json.js';

interface TensorIn {
  name: string;
  shape: number[];
  datatype: string;
  /** Read by `parseKServeJson` as float32, nested arrays flattened. */
  data?: Float32Array;
  parameters?: { binary_data_size?: number };
}

/** The request's fields other than the input's data. */
export interface InferBody {
  id?: string;
  parameters?: { binary_data_output?: boolean };
  inputs: TensorIn[];
  outputs?: { name: string; parameters?: { binary_data?: boolean } }[];
}

/** Parameters of `decodeInferBody`. */
export interface DecodeInferBodyParams {
  body: Uint8Array;
  /** The length of the JSON header (`Inference-Header-Content-Length`), checked by the caller, if sent. */
  headerLength?: number;
  /** The model's input name. */
  inputName: string;
  /** Bytes the JSON outside the tensor data may take (`server.maxJsonBytes`). */
  maxHeaderBytes: number;
  /** @default DEFAULT_BUDGETS */
  budgets?: Partial<Budgets>;
}

/** A decoded request: its fields (inputs without data) and the input as float32. */
export interface DecodedInferBody {
  request: Omit<InferBody, 'inputs'> & { inputs: Omit<TensorIn, 'data'>[] };
  data: Float32Array;
  shape: number[];
}

const READERS: Record<string, { bytes: number; read: (v: DataView, o: number) => number }> = {
  FP32: { bytes: 4, read: (v, o) => v.getFloat32(o, true) },
  FP64: { bytes: 8, read: (v, o) => v.getFloat64(o, true) },
  INT8: { bytes: 1, read: (v, o) => v.getInt8(o) },
  UINT8: { bytes: 1, read: (v, o) => v.getUint8(o) },
  INT16: { bytes: 2, read: (v, o) => v.getInt16(o, true) },
  UINT16: { bytes: 2, read: (v, o) => v.getUint16(o, true) },
  INT32: { bytes: 4, read: (v, o) => v.getInt32(o, true) },
  INT64: { bytes: 8, read: (v, o) => Number(v.getBigInt64(o, true)) },
};

function invalid(message: string): never {
  throw httpError('VALIDATION_FAILED', message);
}

/** Decode an inference request (see the module comment). */
export function decodeInferBody(p: DecodeInferBodyParams): DecodedInferBody {
  const budgets = resolveBudgets(p.budgets);
  const raw = p.body;
  const n = p.headerLength;
  if (n !== undefined && n > raw.length) invalid(`Inference-Header-Content-Length ${n} does not fit the ${raw.length}-byte body`);
  const parsed = parseKServeJson({ bytes: n === undefined ? raw : raw.subarray(0, n), maxHeaderBytes: p.maxHeaderBytes, budgets });
  const binary = n === undefined ? new Uint8Array(0) : raw.subarray(n);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) invalid('the request must be a JSON object');
  const body = parsed as InferBody;
  if (!Array.isArray(body.inputs) || body.inputs.length !== 1) invalid(`the model takes exactly one input ('${p.inputName}')`);
  const input = body.inputs[0]!;
  if (typeof input !== 'object' || input === null) invalid('the input must be a JSON object (name, shape, datatype, data)');
  if (body.outputs !== undefined && !(Array.isArray(body.outputs) && body.outputs.every((o) => typeof o === 'object' && o !== null && typeof o.name === 'string'))) {
    invalid("'outputs' must be a list of objects with a 'name'");
  }
  if (input.name !== p.inputName) invalid(`unknown input '${boundMessage(String(input.name), 200)}'; the model's input is '${p.inputName}'`);
  const reader = READERS[input.datatype];
  if (!reader) invalid(`datatype '${boundMessage(String(input.datatype), 100)}' is not supported; use FP32`);
  if (!Array.isArray(input.shape) || input.shape.length !== 5 || input.shape.some((d) => !Number.isSafeInteger(d) || d < 1)) {
    invalid(`input shape [${boundMessage(String(input.shape), 200)}] must be (N, C, D, H, W) of positive integers`);
  }
  const count = input.shape.reduce((a, b) => a * b, 1);
  if (count > budgets.kserveElements) {
    throw new LimitExceededError(`input '${input.name}' of shape [${input.shape.join(', ')}] holds ${count} elements, over the budget of ${budgets.kserveElements} (${budgetSetting('kserveElements')})`);
  }
  let data: Float32Array;
  const size = input.parameters?.binary_data_size;
  if (size !== undefined) {
    if (size !== count * reader.bytes || binary.length < size) invalid(`binary_data_size ${boundMessage(String(size), 100)} does not match ${count} x ${input.datatype} (or the body is short)`);
    data = new Float32Array(count);
    const view = new DataView(binary.buffer, binary.byteOffset, size);
    for (let i = 0; i < count; i++) {
      const v = Math.fround(reader.read(view, i * reader.bytes));
      if (!Number.isFinite(v)) invalid(`input value ${i} is not a finite float32 (${v})`);
      data[i] = v;
    }
  } else {
    const values = input.data ?? new Float32Array(0);
    if (values.length !== count) invalid(`input has ${values.length} values, shape [${input.shape.join(', ')}] needs ${count}`);
    data = values;
  }
  const { data: _data, ...fields } = input;
  return { request: { id: body.id, parameters: body.parameters, outputs: body.outputs, inputs: [fields] }, data, shape: input.shape };
}

/** `decodeInferBody` as a fence task. */
export const DECODE_INFER_BODY = defineTask(import.meta.url, 'DECODE_INFER_BODY', decodeInferBody);
