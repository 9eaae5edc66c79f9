/**
 * The tensor model shared by every format and conversion: an ordered state dict of
 * `{ dtype, shape, data }`, where `data` is a view over the bytes the tensor came from
 * whenever their alignment allows, and a copy only when it does not.
 */
import { DTYPES, type DType, type DTypeArrayMap, type TypedArray } from './dtypes.js';
import { CheckpointFormatError, LimitExceededError } from './errors.js';

/** One tensor: dtype, shape (row-major, C order) and its little-endian data. */
export interface Tensor<D extends DType = DType> {
  readonly dtype: D;
  readonly shape: readonly number[];
  readonly data: DTypeArrayMap[D];
}

/** An ordered state dict: tensor name -> tensor, in the order the file or model gives. */
export type StateDict = Map<string, Tensor>;

/** A state dict with the string metadata that travels with it. */
export interface Checkpoint {
  readonly tensors: StateDict;
  /** Free-form string metadata (safetensors `__metadata__`, ONNX `metadata_props`). */
  readonly metadata: Record<string, string>;
}

/** Limits that readers apply to untrusted files before allocating. */
export const LIMITS = {
  /** Most dimensions a tensor may have. */
  maxDims: 16,
  /** Most elements of one tensor (2^34, 64 GiB of float32). */
  maxElements: 2 ** 34,
  /** Most tensors in one checkpoint. */
  maxTensors: 1_000_000,
} as const;

/** Number of elements of a shape; validates every dimension. */
export function numel(shape: readonly number[], where = 'tensor'): number {
  if (shape.length > LIMITS.maxDims) {
    throw new LimitExceededError(`${where} has ${shape.length} dimensions, more than the limit of ${LIMITS.maxDims}`);
  }
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new CheckpointFormatError(`${where} has an invalid dimension ${String(d)} in shape [${shape.join(', ')}]`);
    }
    n *= d;
    if (n > LIMITS.maxElements) {
      throw new LimitExceededError(`${where} has more than ${LIMITS.maxElements} elements (shape [${shape.join(', ')}])`);
    }
  }
  return n;
}

/** The raw bytes of a tensor's data (a view, never a copy). */
export function bytesOf(t: { readonly data: TypedArray }): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/**
 * A typed view over `length` elements at `bytes[offset...]`: zero-copy when the absolute
 * offset is a multiple of the item size, otherwise one aligned copy.
 */
export function typedView<D extends DType>(dtype: D, bytes: Uint8Array, offset: number, length: number): DTypeArrayMap[D] {
  const { array, itemsize } = DTYPES[dtype];
  const byteOffset = bytes.byteOffset + offset;
  const byteLength = length * itemsize;
  if (offset < 0 || offset + byteLength > bytes.byteLength) {
    throw new CheckpointFormatError(`data range [${offset}, ${offset + byteLength}) is outside the ${bytes.byteLength} bytes available`);
  }
  if (byteOffset % itemsize === 0) return new array(bytes.buffer, byteOffset, length);
  const copy = new Uint8Array(byteLength);
  copy.set(bytes.subarray(offset, offset + byteLength));
  return new array(copy.buffer, 0, length);
}

/** A new zero-filled tensor. */
export function zeros<D extends DType>(dtype: D, shape: readonly number[]): Tensor<D> {
  return { dtype, shape: [...shape], data: new DTYPES[dtype].array(numel(shape)) };
}

/** Total number of elements over all tensors of a state dict (the parameter count). */
export function countParameters(tensors: Iterable<Tensor>): number {
  let n = 0;
  for (const t of tensors) n += t.data.length;
  return n;
}

/** State dict entries that are buffers (BatchNorm statistics), not trainable parameters. */
export function isBuffer(key: string): boolean {
  return /(^|\.)(running_mean|running_var|num_batches_tracked)$/.test(key);
}

/** Number of trainable parameters (buffers such as BatchNorm statistics left out). */
export function countTrainable(sd: ReadonlyMap<string, Tensor>): number {
  return countParametersAndBuffers(sd).parameters;
}

/** A state dict's elements as PyTorch counts them, parameters and buffers apart. */
export interface ParameterCount {
  /** Trainable parameters: `sum(p.numel() for p in model.parameters())` of the module that holds the state dict. */
  parameters: number;
  /** Elements of buffers (BatchNorm `running_mean`, `running_var`, `num_batches_tracked`), which PyTorch does not count as parameters. */
  buffers: number;
}

/** Count a state dict's parameters and buffers apart (see `ParameterCount`). */
export function countParametersAndBuffers(sd: Iterable<readonly [string, Tensor]>): ParameterCount {
  let parameters = 0;
  let buffers = 0;
  for (const [k, t] of sd) {
    if (isBuffer(k)) buffers += t.data.length;
    else parameters += t.data.length;
  }
  return { parameters, buffers };
}

/** Are two tensors equal in dtype, shape and every byte? */
export function tensorsEqual(a: Tensor, b: Tensor): boolean {
  if (a.dtype !== b.dtype || a.shape.length !== b.shape.length) return false;
  if (a.shape.some((d, i) => d !== b.shape[i])) return false;
  return Buffer.compare(bytesOf(a), bytesOf(b)) === 0;
}
