/** Write float32 arrays as NumPy `.npy` (format 1.0, little-endian, C order). */
import { InvalidArgumentError } from '../../converters/errors.js';
import { writeChunksAtomic } from '../../converters/io.js';

/** What `encodeNpy` writes. */
export interface EncodeNpyParams {
  /** The values, C order. */
  data: Float32Array;
  /** The array shape; its product must equal `data.length`. */
  shape: readonly number[];
}

/** Encode a float32 array as `.npy` bytes: header then data, the header padded to 64 bytes as NumPy does. */
export function encodeNpy(params: EncodeNpyParams): Uint8Array {
  const { data, shape } = params;
  const count = shape.reduce((a, b) => a * b, 1);
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0) || count !== data.length) {
    throw new InvalidArgumentError(`'shape' [${shape.join(', ')}] does not match the ${data.length} values of 'data'`);
  }
  const tuple = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${tuple}, }`;
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  header = header.padEnd(total - 10 - 1, ' ') + '\n';
  const out = new Uint8Array(total + data.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0], 0);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  const view = new DataView(out.buffer, total);
  for (let i = 0; i < data.length; i++) view.setFloat32(i * 4, data[i]!, true);
  return out;
}

/** Write a float32 `.npy` file atomically; returns the bytes written. */
export async function writeNpy(params: EncodeNpyParams & { path: string }): Promise<number> {
  return writeChunksAtomic(params.path, [encodeNpy(params)]);
}
