/**
 * The one dtype table of the project: safetensors names, torch storage and dtype names,
 * ONNX element types, the TypedArray that holds the data and the byte size, kept in step at
 * the type level (`DTypeArrayMap`) and at run time (`DTYPES`), as onnxruntime's
 * `js/common` does. F16 and BF16 stay raw 16-bit words (`Uint16Array`) and are widened only
 * on request (`toFloat32`).
 */
import { UnsupportedError } from './errors.js';

/** Type-level map from dtype name (the safetensors spelling) to the array that holds it. */
export interface DTypeArrayMap {
  F64: Float64Array;
  F32: Float32Array;
  F16: Uint16Array;
  BF16: Uint16Array;
  I64: BigInt64Array;
  I32: Int32Array;
  I16: Int16Array;
  I8: Int8Array;
  U8: Uint8Array;
  BOOL: Uint8Array;
}

/** A dtype name, spelled as safetensors spells it. */
export type DType = keyof DTypeArrayMap;

/** Any array that can hold tensor data. */
export type TypedArray = DTypeArrayMap[DType];

/** A constructor of one of the arrays above. */
export interface TypedArrayConstructor<A extends TypedArray = TypedArray> {
  new (length: number): A;
  new (buffer: ArrayBufferLike, byteOffset?: number, length?: number): A;
  readonly BYTES_PER_ELEMENT: number;
}

/** Everything known about one dtype. */
export interface DTypeInfo<D extends DType = DType> {
  readonly name: D;
  /** Bytes per element. */
  readonly itemsize: number;
  /** Array that holds the raw little-endian data. */
  readonly array: TypedArrayConstructor<DTypeArrayMap[D]>;
  /** Legacy torch storage class (`torch.FloatStorage`), as pickled by `torch.save`. */
  readonly torchStorage: string;
  /** torch dtype attribute name (`torch.float32` -> `float32`). */
  readonly torchDtype: string;
  /** ONNX `TensorProto.DataType` value. */
  readonly onnx: number;
  /** NumPy dtype descriptor for little-endian `.npy` (`<f4`); `|b1` for bool. */
  readonly numpy: string;
  /** Floating point (can hold weights that are trained). */
  readonly float: boolean;
}

function info<D extends DType>(
  name: D,
  itemsize: number,
  array: TypedArrayConstructor<DTypeArrayMap[D]>,
  torchStorage: string,
  torchDtype: string,
  onnx: number,
  numpy: string,
  float: boolean,
): DTypeInfo<D> {
  return { name, itemsize, array, torchStorage, torchDtype, onnx, numpy, float };
}

/** The run-time table; keys and values agree with `DTypeArrayMap` (checked by a test). */
export const DTYPES: { readonly [D in DType]: DTypeInfo<D> } = {
  F64: info('F64', 8, Float64Array, 'DoubleStorage', 'float64', 11, '<f8', true),
  F32: info('F32', 4, Float32Array, 'FloatStorage', 'float32', 1, '<f4', true),
  F16: info('F16', 2, Uint16Array, 'HalfStorage', 'float16', 10, '<f2', true),
  BF16: info('BF16', 2, Uint16Array, 'BFloat16Storage', 'bfloat16', 16, '', true),
  I64: info('I64', 8, BigInt64Array, 'LongStorage', 'int64', 7, '<i8', false),
  I32: info('I32', 4, Int32Array, 'IntStorage', 'int32', 6, '<i4', false),
  I16: info('I16', 2, Int16Array, 'ShortStorage', 'int16', 5, '<i2', false),
  I8: info('I8', 1, Int8Array, 'CharStorage', 'int8', 3, '|i1', false),
  U8: info('U8', 1, Uint8Array, 'ByteStorage', 'uint8', 2, '|u1', false),
  BOOL: info('BOOL', 1, Uint8Array, 'BoolStorage', 'bool', 9, '|b1', false),
};

/** All dtype names, in table order. */
export const DTYPE_NAMES = Object.keys(DTYPES) as DType[];

const byTorchStorage = new Map(DTYPE_NAMES.map((d) => [DTYPES[d].torchStorage, d]));
const byTorchDtype = new Map(DTYPE_NAMES.map((d) => [DTYPES[d].torchDtype, d]));
const byOnnx = new Map(DTYPE_NAMES.map((d) => [DTYPES[d].onnx, d]));

/** Is `name` a dtype of the table? */
export function isDType(name: string): name is DType {
  return Object.hasOwn(DTYPES, name);
}

/** The dtype of a torch storage class name (`FloatStorage`), or an error naming it. */
export function dtypeFromTorchStorage(storage: string): DType {
  const d = byTorchStorage.get(storage);
  if (d === undefined) throw new UnsupportedError(`torch storage type '${storage}' is not supported`);
  return d;
}

/** The dtype of a torch dtype name (`float32`), or an error naming it. */
export function dtypeFromTorchDtype(name: string): DType {
  const d = byTorchDtype.get(name);
  if (d === undefined) throw new UnsupportedError(`torch dtype '${name}' is not supported`);
  return d;
}

/** The dtype of an ONNX element type, or an error naming it. */
export function dtypeFromOnnx(elemType: number): DType {
  const d = byOnnx.get(elemType);
  if (d === undefined) throw new UnsupportedError(`ONNX element type ${elemType} is not supported`);
  return d;
}

/** Widen one IEEE half-precision word to a number. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Narrow a number to an IEEE half-precision word, rounding to nearest even. */
export function floatToHalf(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    if (rem > half || (rem === half && (r & 1))) r++;
    return sign | r;
  }
  let r = mant >>> 13;
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1))) {
    r++;
    if (r === 0x400) {
      r = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | r;
}

/** Narrow a number to a bfloat16 word, rounding to nearest even (NaN stays NaN). */
export function floatToBFloat16(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Widen a bfloat16 word to a number. */
export function bfloat16ToFloat(h: number): number {
  u32[0] = h << 16;
  return f32[0]!;
}

/** Widen any numeric data to float32 (F16/BF16 are decoded; integers and bool converted). */
export function toFloat32(dtype: DType, data: TypedArray): Float32Array {
  if (dtype === 'F32') return data as Float32Array;
  const out = new Float32Array(data.length);
  if (dtype === 'F16') {
    const src = data as Uint16Array;
    for (let i = 0; i < src.length; i++) out[i] = halfToFloat(src[i]!);
  } else if (dtype === 'BF16') {
    const src = data as Uint16Array;
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < src.length; i++) bits[i] = src[i]! << 16;
  } else if (dtype === 'I64') {
    const src = data as BigInt64Array;
    for (let i = 0; i < src.length; i++) out[i] = Number(src[i]!);
  } else {
    const src = data as Exclude<TypedArray, BigInt64Array>;
    for (let i = 0; i < src.length; i++) out[i] = src[i]!;
  }
  return out;
}

/** Narrow float32 values to the given floating dtype (the inverse of `toFloat32` for floats). */
export function fromFloat32(dtype: DType, values: Float32Array): TypedArray {
  switch (dtype) {
    case 'F32':
      return values;
    case 'F64':
      return Float64Array.from(values);
    case 'F16': {
      const out = new Uint16Array(values.length);
      for (let i = 0; i < values.length; i++) out[i] = floatToHalf(values[i]!);
      return out;
    }
    case 'BF16': {
      const out = new Uint16Array(values.length);
      for (let i = 0; i < values.length; i++) out[i] = floatToBFloat16(values[i]!);
      return out;
    }
    default:
      throw new UnsupportedError(`cannot store float values as ${dtype}`);
  }
}
