/**
 * The body of an Open Inference Protocol (KServe v2) inference request: the JSON header (the
 * whole body, or its first `Inference-Header-Content-Length` bytes) and the one input tensor,
 * from JSON `data` or the binary tensor data after the header, as float32. One task, so that
 * the fence parses large bodies off the request thread. Errors are 400s (`InvalidArgumentError`).
 */
import { InvalidArgumentError } from '../../converters/errors.js';
import { defineTask } from '../../converters/fence/task.js';

interface TensorIn {
  name: string;
  shape: number[];
  datatype: string;
  data?: unknown[];
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
  /** The `Inference-Header-Content-Length` header, if sent. */
  headerLength?: string;
  /** The model's input name. */
  inputName: string;
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

/** Decode an inference request (see the module comment). */
export function decodeInferBody(p: DecodeInferBodyParams): DecodedInferBody {
  const raw = Buffer.from(p.body.buffer, p.body.byteOffset, p.body.byteLength);
  const headerLength = p.headerLength;
  let body: InferBody;
  let binary: Buffer = Buffer.alloc(0);
  if (headerLength !== undefined) {
    const n = Number(headerLength);
    if (!Number.isSafeInteger(n) || n < 0 || n > raw.length) throw new InvalidArgumentError(`Inference-Header-Content-Length ${headerLength} does not fit the ${raw.length}-byte body`);
    body = parseJson(raw.subarray(0, n));
    binary = raw.subarray(n);
  } else {
    body = parseJson(raw);
  }
  if (typeof body !== 'object' || body === null || !Array.isArray(body.inputs) || body.inputs.length !== 1) throw new InvalidArgumentError(`the model takes exactly one input ('${p.inputName}')`);
  const input = body.inputs[0]!;
  if (typeof input !== 'object' || input === null) throw new InvalidArgumentError(`the input must be an object with name, shape, datatype and data`);
  if (input.name !== p.inputName) throw new InvalidArgumentError(`unknown input '${input.name}'; the model's input is '${p.inputName}'`);
  const reader = READERS[input.datatype];
  if (!reader) throw new InvalidArgumentError(`datatype '${input.datatype}' is not supported; use FP32`);
  if (!Array.isArray(input.shape) || input.shape.length !== 5 || input.shape.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new InvalidArgumentError(`input shape [${String(input.shape)}] must be (N, C, D, H, W)`);
  }
  const count = input.shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(count);
  const size = input.parameters?.binary_data_size;
  if (size !== undefined) {
    if (size !== count * reader.bytes || binary.length < size) throw new InvalidArgumentError(`binary_data_size ${size} does not match ${count} x ${input.datatype} (or the body is short)`);
    const view = new DataView(binary.buffer, binary.byteOffset, size);
    for (let i = 0; i < count; i++) data[i] = reader.read(view, i * reader.bytes);
  } else {
    const flat = (input.data ?? []).flat(Infinity) as unknown[];
    if (flat.length !== count) throw new InvalidArgumentError(`input has ${flat.length} values, shape [${input.shape.join(', ')}] needs ${count}`);
    for (let i = 0; i < count; i++) {
      const v = Number(flat[i]);
      if (!Number.isFinite(v)) throw new InvalidArgumentError(`input value ${i} is not a number`);
      data[i] = v;
    }
  }
  const { data: _data, ...fields } = input;
  return { request: { id: body.id, parameters: body.parameters, outputs: body.outputs, inputs: [fields] }, data, shape: input.shape };
}

function parseJson(bytes: Buffer): InferBody {
  try {
    return JSON.parse(bytes.toString('utf8')) as InferBody;
  } catch {
    throw new InvalidArgumentError('the request is not valid JSON');
  }
}

/** `decodeInferBody` as a fence task. */
export const DECODE_INFER_BODY = defineTask(import.meta.url, 'DECODE_INFER_BODY', decodeInferBody);
