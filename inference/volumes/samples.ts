/**
 * Decoding of stored voxel samples (any common integer or float type, either byte order)
 * into a typed array of the host's order, shared by the NIfTI, NumPy, DICOM and raw readers.
 */
import { halfToFloat } from '../../converters/dtypes.js';

/** The sample types the readers decode. */
export type SampleType = 'bool' | 'uint8' | 'int8' | 'uint16' | 'int16' | 'uint32' | 'int32' | 'uint64' | 'int64' | 'float16' | 'float32' | 'float64';

/** Bytes per sample of each type. */
export const SAMPLE_BYTES: Record<SampleType, number> = {
  bool: 1,
  uint8: 1,
  int8: 1,
  uint16: 2,
  int16: 2,
  uint32: 4,
  int32: 4,
  uint64: 8,
  int64: 8,
  float16: 2,
  float32: 4,
  float64: 8,
};

/** A decoded array of samples, indexable as numbers. */
export type Samples = ArrayLike<number>;

const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const float16 = halfToFloat;

/**
 * Decode `count` samples of `type` starting at `offset` (the caller has checked that the
 * bytes are there). Where the samples lie aligned in the host's byte order, the result is a
 * view of `bytes` (no copy: a 512x512x600 int16 CT is 315 MB); else a fresh array. Read it, do
 * not change or keep it.
 */
export function decodeSamples(bytes: Uint8Array, offset: number, count: number, type: SampleType, littleEndian: boolean): Samples {
  const size = SAMPLE_BYTES[type];
  const at = bytes.byteOffset + offset;
  const direct = (size === 1 || littleEndian === HOST_LE) && at % size === 0 && type !== 'float16' && type !== 'int64' && type !== 'uint64';
  if (direct) {
    const buf = bytes.buffer;
    switch (type) {
      case 'bool':
      case 'uint8':
        return new Uint8Array(buf, at, count);
      case 'int8':
        return new Int8Array(buf, at, count);
      case 'uint16':
        return new Uint16Array(buf, at, count);
      case 'int16':
        return new Int16Array(buf, at, count);
      case 'uint32':
        return new Uint32Array(buf, at, count);
      case 'int32':
        return new Int32Array(buf, at, count);
      case 'float32':
        return new Float32Array(buf, at, count);
      case 'float64':
        return new Float64Array(buf, at, count);
    }
  }
  // a copy (Buffer.prototype.slice would return a view), aligned for the typed array
  const copy = new Uint8Array(bytes.subarray(offset, offset + count * size));
  if (size > 1 && littleEndian !== HOST_LE) {
    for (let p = 0; p < copy.length; p += size) {
      for (let a = p, b = p + size - 1; a < b; a++, b--) {
        const t = copy[a]!;
        copy[a] = copy[b]!;
        copy[b] = t;
      }
    }
  }
  const buf = copy.buffer;
  switch (type) {
    case 'bool':
    case 'uint8':
      return copy;
    case 'int8':
      return new Int8Array(buf);
    case 'uint16':
      return new Uint16Array(buf);
    case 'int16':
      return new Int16Array(buf);
    case 'uint32':
      return new Uint32Array(buf);
    case 'int32':
      return new Int32Array(buf);
    case 'float32':
      return new Float32Array(buf);
    case 'float64':
      return new Float64Array(buf);
    case 'float16': {
      const h = new Uint16Array(buf);
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = float16(h[i]!);
      return out;
    }
    case 'int64':
    case 'uint64': {
      const big = type === 'int64' ? new BigInt64Array(buf) : new BigUint64Array(buf);
      const out = new Float64Array(count);
      for (let i = 0; i < count; i++) out[i] = Number(big[i]!);
      return out;
    }
  }
}
