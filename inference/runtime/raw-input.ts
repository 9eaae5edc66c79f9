/**
 * `--raw` inputs: an array fed to the network as stored. A `.npy` of shape (D, H, W),
 * (C, D, H, W) or (N, C, D, H, W) keeps its own layout (no reorientation); any other volume
 * format is read as its canonical (C, D, H, W) array.
 */
import { InvalidArgumentError } from '../../converters/errors.js';
import { readFileBytes } from '../../converters/io.js';
import { parseNpyHeader, readVolume } from '../volumes/index.js';
import { decodeSamples, SAMPLE_BYTES } from '../volumes/samples.js';
import type { FloatTensor } from './engine.js';

/** Read an array for `--raw`, as (N, C, D, H, W). */
export async function readRawArray(path: string): Promise<FloatTensor> {
  if (!/\.npy$/i.test(path)) {
    const v = await readVolume(path);
    return { data: v.data, shape: [1, ...v.shape] };
  }
  const bytes = await readFileBytes(path);
  const h = parseNpyHeader(bytes, path);
  const s = h.shape;
  if (s.length < 3 || s.length > 5) throw new InvalidArgumentError(`${path}: --raw takes an array of shape (D, H, W), (C, D, H, W) or (N, C, D, H, W), got (${s.join(', ')})`);
  const shape = s.length === 3 ? [1, 1, ...s] : s.length === 4 ? [1, ...s] : [...s];
  const n = shape.reduce((a, b) => a * b, 1);
  if (h.dataOffset + n * SAMPLE_BYTES[h.type] > bytes.byteLength) throw new InvalidArgumentError(`${path}: truncated (${n} values expected)`);
  const samples = decodeSamples(bytes, h.dataOffset, n, h.type, h.littleEndian);
  const data = new Float32Array(n);
  if (!h.fortranOrder) for (let i = 0; i < n; i++) data[i] = samples[i]!;
  else {
    // Fortran order: the first index runs fastest in the file.
    const idx = new Array<number>(s.length).fill(0);
    for (let k = 0; k < n; k++) {
      let f = 0;
      for (let a = s.length - 1; a >= 0; a--) f = f * s[a]! + idx[a]!;
      data[k] = samples[f]!;
      for (let a = s.length - 1; a >= 0; a--) {
        idx[a]!++;
        if (idx[a]! < s[a]!) break;
        idx[a] = 0;
      }
    }
  }
  return { data, shape };
}
