/**
 * ONNX models: `ModelProto` read and written through the standard protobuf definitions
 * (`onnx-proto`, generated from onnx.proto), initializers with `raw_data` or typed fields,
 * and external data files next to the model.
 */
import { realpath, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, sep } from 'node:path';
import onnxProto from 'onnx-proto';
import { boundMessage, resolveBudgets, type Budgets } from '../budgets.js';
import { DTYPES, dtypeFromOnnx, type DType } from '../dtypes.js';
import { CheckpointFormatError, UnsupportedError } from '../errors.js';
import { readFileBytes } from '../io.js';
import { bytesOf, numel, typedView, type Checkpoint, type StateDict, type Tensor } from '../tensor.js';

/** The generated ONNX protobuf namespace. */
export const onnx = onnxProto.onnx;
/** An ONNX protobuf namespace member type, e.g. `Onnx.IModelProto`. */
export type { onnx as Onnx } from 'onnx-proto';
import type { onnx as OnnxNs } from 'onnx-proto';

type Int64 = number | { toNumber(): number };

/** A protobuf int64 (number or Long) as a safe number. */
export function int64(v: Int64 | null | undefined): number {
  if (v === null || v === undefined) return 0;
  const n = typeof v === 'number' ? v : v.toNumber();
  if (!Number.isSafeInteger(n)) throw new CheckpointFormatError(`64-bit integer ${String(v)} is out of the safe range`);
  return n;
}

/** Reads external data: `location` is relative to the model's folder. */
export type ExternalDataLoader = (location: string) => Uint8Array;

/** Options of `decodeOnnx`. */
export interface DecodeOnnxParams {
  /** Name used in error messages. @default 'ONNX model' */
  file?: string;
  /** Budgets: `errorMessageChars`. @default DEFAULT_BUDGETS */
  budgets?: Partial<Budgets>;
}

/** Decode a `ModelProto`; malformed bytes become a `CheckpointFormatError`. */
export function decodeOnnx(bytes: Uint8Array, params: DecodeOnnxParams = {}): OnnxNs.ModelProto {
  const file = params.file ?? 'ONNX model';
  let model: OnnxNs.ModelProto;
  try {
    // A Buffer makes protobufjs hand out raw_data as views, not copies.
    model = onnx.ModelProto.decode(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (err) {
    const max = resolveBudgets(params.budgets).errorMessageChars;
    throw new CheckpointFormatError(boundMessage(`${file}: not a valid ONNX ModelProto (${(err as Error).message})`, max), { file });
  }
  if (!model.graph) throw new CheckpointFormatError(`${file}: ONNX model has no graph`, { file });
  return model;
}

/** Encode a `ModelProto` to bytes (one contiguous buffer). */
export function encodeOnnx(model: OnnxNs.IModelProto): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}

/** Protobuf varint bytes of a non-negative integer. */
function varint(n: number): Uint8Array {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return Uint8Array.from(out);
}

/** A length-delimited field: tag, length, then the body's chunks. */
function lengthDelimited(fieldNumber: number, body: Uint8Array[]): Uint8Array[] {
  const len = body.reduce((a, c) => a + c.byteLength, 0);
  return [varint((fieldNumber << 3) | 2), varint(len), ...body];
}

const MODEL_GRAPH_FIELD = 7;
const GRAPH_INITIALIZER_FIELD = 5;
const TENSOR_RAW_DATA_FIELD = 9;

/**
 * Encode a `ModelProto` as a list of chunks in which every initializer's `raw_data` is the
 * tensor's own bytes (a view), so writing a large model needs no second copy of its weights.
 * The bytes parse to the same message as `encodeOnnx` (fields of a message may come in any
 * order; the initializers keep theirs).
 */
export function encodeOnnxChunks(model: OnnxNs.IModelProto): Uint8Array[] {
  const graph = model.graph;
  if (!graph) return [encodeOnnx(model)];
  const head = encodeOnnx({ ...model, graph: undefined });
  const graphHead = onnx.GraphProto.encode({ ...graph, initializer: [] }).finish();
  const inits: Uint8Array[] = [];
  for (const init of graph.initializer ?? []) {
    const raw = init.rawData;
    const body = raw && raw.byteLength > 0
      ? [onnx.TensorProto.encode({ ...init, rawData: undefined }).finish(), ...lengthDelimited(TENSOR_RAW_DATA_FIELD, [raw])]
      : [onnx.TensorProto.encode(init).finish()];
    inits.push(...lengthDelimited(GRAPH_INITIALIZER_FIELD, body));
  }
  return [head, ...lengthDelimited(MODEL_GRAPH_FIELD, [graphHead, ...inits])];
}

/** Options of `tensorFromProto`. */
export interface TensorFromProtoParams {
  file?: string;
  /** Loader for initializers stored in external data files. */
  loadExternal?: ExternalDataLoader;
  /** Budgets: `errorMessageChars`. @default DEFAULT_BUDGETS */
  budgets?: Partial<Budgets>;
}

/** Turn an ONNX `TensorProto` into a tensor (a view of `raw_data` where aligned). */
export function tensorFromProto(t: OnnxNs.ITensorProto, params: TensorFromProtoParams = {}): Tensor {
  const file = params.file ?? 'ONNX model';
  const name = t.name ?? '';
  const max = resolveBudgets(params.budgets).errorMessageChars;
  const where = boundMessage(`${file}: initializer '${name}'`, max);
  const fail: (msg: string) => never = (msg) => {
    throw new CheckpointFormatError(boundMessage(`${where}${msg}`, max), { file });
  };
  let dtype: DType;
  try {
    dtype = dtypeFromOnnx(t.dataType ?? 0);
  } catch {
    return fail(` has unsupported element type ${t.dataType ?? 0}`);
  }
  const shape = (t.dims ?? []).map(int64);
  const n = numel(shape, where);
  const { itemsize, array } = DTYPES[dtype];
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    const info = new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
    const location = info.get('location');
    if (!location) fail(` is external but names no location`);
    if (!params.loadExternal) fail(` is stored in external file '${location}', which was not given`);
    const bytes = params.loadExternal(location);
    const offset = Number(info.get('offset') ?? '0');
    const length = info.has('length') ? Number(info.get('length')) : n * itemsize;
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length !== n * itemsize || offset + length > bytes.byteLength) {
      fail(`: external range offset=${offset} length=${length} does not fit '${location}' (${bytes.byteLength} bytes) or the shape`);
    }
    return { dtype, shape, data: typedView(dtype, bytes, offset, n) } as Tensor;
  }
  const raw = t.rawData;
  if (raw && raw.byteLength > 0) {
    if (raw.byteLength !== n * itemsize) {
      fail(` has ${raw.byteLength} bytes of raw_data, but ${dtype} [${shape.join(', ')}] needs ${n * itemsize}`);
    }
    return { dtype, shape, data: typedView(dtype, raw, 0, n) } as Tensor;
  }
  const typed = typedField(t, dtype);
  if (typed.length !== n) {
    fail(` holds ${typed.length} values, but shape [${shape.join(', ')}] needs ${n}`);
  }
  const data = new array(n);
  if (dtype === 'I64') {
    const out = data as BigInt64Array;
    typed.forEach((v, i) => (out[i] = BigInt(int64(v as Int64))));
  } else {
    const out = data as Exclude<typeof data, BigInt64Array>;
    typed.forEach((v, i) => (out[i] = Number(v)));
  }
  return { dtype, shape, data } as Tensor;
}

function typedField(t: OnnxNs.ITensorProto, dtype: DType): readonly unknown[] {
  switch (dtype) {
    case 'F32':
      return t.floatData ?? [];
    case 'F64':
      return t.doubleData ?? [];
    case 'I64':
      return t.int64Data ?? [];
    default:
      return t.int32Data ?? [];
  }
}

/** An ONNX `TensorProto` holding a tensor in `raw_data` (a view, not a copy). */
export function tensorToProto(name: string, t: Tensor): OnnxNs.ITensorProto {
  return { name, dataType: DTYPES[t.dtype].onnx, dims: [...t.shape], rawData: bytesOf(t) };
}

/**
 * Read an `.onnx` file that the user named (on the command line) and the external data files
 * it names.
 *
 * Where external data is read from is decided here, and only here: beside a file the user
 * named, inside its folder. A location is refused when it is empty, absolute, has a `..`
 * part, or when its real path (links resolved) leaves the folder; what it names must be a
 * regular file. A model that came from anywhere else (a URL, an upload, the zoo) never has a
 * location resolved against this machine's filesystem: its bytes were fetched, so the folder
 * "beside it" is the server's own (a URL path `/etc/model.onnx` with data `passwd` would
 * serve /etc/passwd as weights); those models are read with `refuseExternalData`.
 */
export async function readOnnxFile(
  path: string,
  bytes?: Uint8Array,
  params: { budgets?: Partial<Budgets> } = {},
): Promise<{ model: OnnxNs.ModelProto; loadExternal: ExternalDataLoader }> {
  const model = decodeOnnx(bytes ?? (await readFileBytes(path)), { file: path, budgets: params.budgets });
  const external = new Map<string, Uint8Array>();
  let dir: string | undefined;
  for (const init of model.graph?.initializer ?? []) {
    if (init.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) continue;
    const location = (init.externalData ?? []).find((e) => e.key === 'location')?.value ?? '';
    if (external.has(location)) continue;
    dir ??= await realpath(dirname(path));
    external.set(location, await readBeside(dir, location, path));
  }
  const loadExternal: ExternalDataLoader = (location) => {
    const b = external.get(location);
    if (b === undefined) throw new CheckpointFormatError(`${path}: external data file '${location}' is not available`, { file: path });
    return b;
  };
  return { model, loadExternal };
}

/** Read the external data file `location` inside the real folder `dir` (see `readOnnxFile`). */
async function readBeside(dir: string, location: string, file: string): Promise<Uint8Array> {
  const refuse = (why: string) => new CheckpointFormatError(`${file}: external data location '${location}' ${why}`, { file });
  if (!location) throw refuse('is empty');
  if (isAbsolute(location) || location.split(/[\\/]/).includes('..')) throw refuse("escapes the model's folder");
  let real: string;
  try {
    real = await realpath(join(dir, location));
  } catch {
    throw refuse("names no file in the model's folder");
  }
  if (!real.startsWith(dir.endsWith(sep) ? dir : dir + sep)) throw refuse("escapes the model's folder through a link");
  if (!(await stat(real)).isFile()) throw refuse('is not a regular file');
  return readFileBytes(real);
}

/**
 * The external data loader of a model that did not come from a file the user named: a model
 * fetched from a URL, uploaded, or pulled from the zoo. It refuses every location (see
 * `readOnnxFile` for why); `origin` says where the model came from, as in "a URL".
 */
export function refuseExternalData(file: string, origin: string): ExternalDataLoader {
  return (location) => {
    throw new UnsupportedError(
      `${file}: external data '${location}' is not read for a model fetched from ${origin}; embed the weights (onnx.save(..., save_as_external_data=False))`,
    );
  };
}

/** The initializers of a model as a state dict, with its metadata properties. */
export function onnxToCheckpoint(model: OnnxNs.IModelProto, params: TensorFromProtoParams = {}): Checkpoint {
  const tensors: StateDict = new Map();
  for (const init of model.graph?.initializer ?? []) tensors.set(init.name ?? '', tensorFromProto(init, params));
  const metadata: Record<string, string> = {};
  for (const p of model.metadataProps ?? []) metadata[p.key ?? ''] = p.value ?? '';
  return { tensors, metadata };
}

/** Options of `encodeOnnxExternal`. */
export interface ExternalDataParams {
  /** File name of the data file, written next to the model. */
  location: string;
  /** Initializers at least this large go to the data file. @default 1024 */
  threshold?: number;
  /** Alignment of each tensor in the data file. @default 64 */
  align?: number;
}

/**
 * Encode a model with its large initializers moved to an external data file (for models
 * beyond protobuf's 2 GiB limit). Returns the model bytes and the data file's chunks.
 */
export function encodeOnnxExternal(model: OnnxNs.IModelProto, params: ExternalDataParams): { model: Uint8Array; data: Uint8Array[] } {
  const threshold = params.threshold ?? 1024;
  const align = params.align ?? 64;
  const data: Uint8Array[] = [];
  let offset = 0;
  const inits = (model.graph?.initializer ?? []).map((init) => {
    const raw = init.rawData;
    if (!raw || raw.byteLength < threshold) return init;
    const pad = (align - (offset % align)) % align;
    if (pad) data.push(new Uint8Array(pad));
    offset += pad;
    data.push(raw);
    const entry: OnnxNs.ITensorProto = {
      ...init,
      rawData: undefined,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: params.location },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: String(raw.byteLength) },
      ],
    };
    offset += raw.byteLength;
    return entry;
  });
  const out = { ...model, graph: { ...model.graph, initializer: inits } };
  return { model: encodeOnnx(out), data };
}
